// Package nats holds the built-in stage types that read from and write to
// NATS outside the pipeline's own streams: core NATS subjects, JetStream
// streams and KV buckets.
//
// Sources: nats, jetstream, kv_watch. Sinks: nats, jetstream, kv.
//
// [Register] adds them to a registry; package stages/builtin adds every
// family. docs/stages.md is their reference.
package nats
