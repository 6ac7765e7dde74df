// Package window holds the window transform, which aggregates records by
// key over event-time windows and emits them when the watermark passes.
//
// Transform: window.
//
// [Register] adds it to a registry; package stages/builtin adds every
// family. docs/stages.md is its reference.
package window
