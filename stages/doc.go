// Package stages defines what a sluice stage is: the [Message] that flows
// between stages, the [Source], [Transform] and [Sink] interfaces, the
// declarative [Spec] of a stage type with its [Param]s, and the [Registry]
// that maps type names to specs.
//
// The built-in types (sources generate, file, stdin, kv_watch; transforms
// map, filter, split, dedupe, rate_limit; sinks stdout, file, discard, kv)
// are registered in [Default] and in every registry made by [NewRegistry].
// The types that keep state in NATS (kv_watch, dedupe, rate_limit, kv) use
// [Info.Conn] and refuse to build without it ([ErrNoConn]).
//
// A Go program adds its own types with [Register] (or [MustRegister] from an
// init function) and then runs pipelines through the runner package.
//
// Lifecycle: the runner builds one Source per source stage, one Transform per
// worker (so a Transform is never called concurrently), and one Sink per sink
// stage per process (so Sink.Write may be called by several workers at once
// and must be safe for concurrent use). Every stage is closed with Close.
package stages
