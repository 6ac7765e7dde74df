// Package progress shows how the runs of `sluice run` are going while
// they run. On a terminal it redraws a block of lines, one per stage
// (counts, rate, pending, and for a source that knows its size a bar
// with percent and ETA), and gives the logger a writer that erases the
// block before a line and draws it again after, so that neither garbles
// the other. Elsewhere it logs a structured "progress" line per pipeline
// every interval. It only reads what a [runner.Job] tells.
package progress
