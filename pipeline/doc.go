// Package pipeline is the model of a sluice pipeline: decoding a YAML file
// with line and column positions, ${VAR} and ${VAR:-default} interpolation,
// validation that reports every problem at once as FILE:LINE:COL: message,
// and the stage graph.
//
// A pipeline is loaded with [Load] or [Parse] against a stages.Registry that
// knows the stage types; the result is a [Pipeline] ready for the runner, or
// a [Problems] error listing what is wrong.
package pipeline
