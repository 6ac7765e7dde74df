// Package file holds the built-in stage types that read and write local
// files: the file source (JSON lines, JSON arrays, CSV or text lines, plain
// or compressed with gzip or zstd, resumable) and the file sink (with its
// journal of written IDs and its lock against a second writer).
//
// Source: file. Sink: file.
//
// [Register] adds them to a registry; package stages/builtin adds every
// family. docs/stages.md is their reference.
package file
