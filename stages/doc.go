// Package stages defines what a sluice stage is: the [Message] that flows
// between stages, the [Source], [Transform] and [Sink] interfaces, the
// declarative [Spec] of a stage type with its [Param]s, and the [Registry]
// that maps type names to specs.
//
// The built-in types (sources generate, file, stdin; transforms map, filter,
// split; sinks stdout, file, discard) are registered in [Default] and in
// every registry made by [NewRegistry].
//
// A Go program adds its own types with [Register] (or [MustRegister] from an
// init function) and then runs pipelines through the runner package.
//
// Lifecycle: the runner builds one Source per source stage, one Transform per
// worker (so a Transform is never called concurrently), and one Sink per sink
// stage per process (so Sink.Write may be called by several workers at once
// and must be safe for concurrent use). Every stage is closed with Close.
package stages
