// Package pipetest runs the unit tests of pipelines: YAML files of test
// cases, each feeding records into a pipeline as the output of one of its
// stages and comparing what the stages emitted, and the dead letters,
// with what the case expects. It is the engine of `sluice test`.
//
// A case runs the pipeline's own stages on a NATS server embedded in the
// process, without a listener: its sources are not run (the case's
// records enter in their place) and its sinks are replaced by captures,
// so that a test touches no file, database or network the pipeline
// reads or writes. The run ends as a bounded `sluice run` does: when the
// records are in and every stage has drained, every open window emitted.
package pipetest
