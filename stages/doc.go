// Package stages defines what a sluice stage is: the [Message] that flows
// between stages, the [Source], [Transform] and [Sink] interfaces, the
// declarative [Spec] of a stage type with its [Param]s, and the [Registry]
// that maps type names to specs.
//
// The built-in types are registered in [Default] and in every registry
// made by [NewRegistry]; `sluice stages` lists them and docs/stages.md is
// their reference, generated from their specs. Types that keep state in
// NATS or talk to NATS (kv_watch, dedupe, rate_limit, kv, and nats and
// jetstream when given no url) use [Info.Conn] and refuse to build without
// it ([ErrNoConn]).
//
// A Go program adds its own types with [Register] (or [MustRegister] from an
// init function) and then runs pipelines through the runner package.
//
// Lifecycle: the runner builds one Source per source stage, one Transform per
// worker (so a Transform is never called concurrently), and one Sink per sink
// stage per process (so Sink.Write may be called by several workers at once
// and must be safe for concurrent use). Every stage is closed with Close.
package stages
