// Package stages is the stage API of sluice: the [Message] that flows
// between stages, the [Source], [Transform] and [Sink] interfaces, the
// declarative [Spec] of a stage type with its [Param]s, the [Registry]
// that maps type names to specs, compiled expressions ([Expr]), event
// times, and the loading of Go plugins. It holds no stage type.
//
// The built-in types live in family packages, each with a Register
// function that adds its types to a registry: stages/core (generate,
// stdin, stdout, discard, map, filter, split, switch, template, parse,
// delay), stages/jq, stages/file, stages/nats (nats, jetstream, kv,
// kv_watch), stages/http, stages/sql, stages/exec, stages/window and
// stages/state (dedupe, rate_limit). Package stages/builtin registers every
// family: builtin.NewRegistry returns a registry of all of them, and the
// CLI registers them in [Default] at start. [NewRegistry] and [Default]
// start empty. `sluice stages` lists the built-in types and docs/stages.md
// is their reference, generated from their specs. Types that keep state in
// NATS or talk to NATS (kv_watch, dedupe, rate_limit, kv, and nats and
// jetstream when given no url) use [Info.Conn] and refuse to build without
// it ([ErrNoConn]).
//
// A Go program adds its own types with [Registry.Register] on a registry
// of its own, or with [Register] (or [MustRegister] from an init function)
// on [Default], and then runs pipelines through the runner package.
//
// Lifecycle: the runner builds one Source per source stage, one Transform per
// worker (so a Transform is never called concurrently), and one Sink per sink
// stage per process (so Sink.Write may be called by several workers at once
// and must be safe for concurrent use). Every stage is closed with Close.
package stages
