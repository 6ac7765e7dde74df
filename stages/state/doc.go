// Package state holds the built-in transforms that keep state shared by
// every worker of a stage in NATS KV buckets, and [PurgeState], which
// deletes that state.
//
// Transforms: dedupe, rate_limit.
//
// [Register] adds them to a registry; package stages/builtin adds every
// family. docs/stages.md is their reference.
package state
