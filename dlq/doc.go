// Package dlq administers a pipeline's dead-letter stream: [List] reads
// its dead letters with the reasons the engine stored in their headers,
// and [Replay] puts them back on the input of the stage that failed on
// them, for that stage alone, once it is fixed.
//
// The engine (package runner) writes the dead letters; this package only
// reads and replays them, so that a CLI or an operator's tool can use it
// without running anything.
package dlq
