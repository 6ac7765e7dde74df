// Package core holds the built-in stage types that need nothing but the
// process and the stage API: they generate, read and write records on the
// standard streams, reshape, route and hold them.
//
// Sources: generate, stdin. Transforms: map, filter, split, switch,
// template, parse, delay. Sinks: stdout, discard.
//
// [Register] adds them to a registry; package stages/builtin adds every
// family. docs/stages.md is their reference.
package core
