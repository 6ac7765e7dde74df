// Package jq holds the jq transform, which runs a jq query (gojq) on each
// record.
//
// Transform: jq.
//
// [Register] adds it to a registry; package stages/builtin adds every
// family. docs/stages.md is its reference.
package jq
