// Package http holds the built-in stage types that speak HTTP: a source
// that receives records posted to it and a sink that sends records to an
// endpoint.
//
// Source: http. Sink: http.
//
// [Register] adds them to a registry; package stages/builtin adds every
// family. docs/stages.md is their reference.
package http
