// Package exec holds the exec transform, which runs each record through a
// command in any language speaking JSON lines.
//
// Transform: exec.
//
// [Register] adds it to a registry; package stages/builtin adds every
// family. docs/stages.md is its reference.
package exec
