// Package dlq administers a pipeline's dead-letter stream: [List] reads
// its dead letters with the reasons and the run the engine stored in
// their headers, [Replay] puts those of the latest run back on the input
// of the stage that failed on them, for that stage alone, once it is
// fixed, and [Purge] deletes them. A [Filter] selects them by stage and
// run.
//
// A replay belongs to the run its dead letter came from: a process running
// that run processes it, and a finished run is resumed for it by the next
// run of the pipeline (package runner), so that a bounded source does not
// read its records a second time.
//
// The engine (package runner) writes the dead letters; this package only
// reads, replays and deletes them, so that a CLI or an operator's tool can
// use it without running anything.
package dlq
