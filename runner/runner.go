package runner

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// Options configure a run. The zero value is usable.
type Options struct {
	// Registry builds the stages; nil means stages.Default.
	Registry *stages.Registry
	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
	// Stdin and Stdout are given to the stages; nil means os.Stdin and
	// os.Stdout.
	Stdin  io.Reader
	Stdout io.Writer
}

// StageSummary counts what one stage did in this process during a run.
type StageSummary struct {
	Name        string
	Role        stages.Role
	Type        string
	In          uint64 // messages received (a source: records read)
	Out         uint64 // messages published (a sink: messages written)
	Filtered    uint64 // inputs that produced no output
	Errors      uint64 // failed attempts that were retried
	DeadLetters uint64 // messages sent to the dead-letter stream
	Rate        float64
}

// Summary is the result of a run.
type Summary struct {
	Pipeline    string
	Run         uint64 // the run number, 1 for the first run of a pipeline
	Elapsed     time.Duration
	Interrupted bool // the run was stopped before its sources finished
	Stages      []StageSummary
}

// Run provisions the streams and consumers of p on the server behind nc and
// runs its stages until every bounded source has finished and every stage
// has drained, or until ctx is done (then it stops cleanly and the summary
// says Interrupted). It returns the summary of what this process did.
func Run(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline, opts Options) (*Summary, error) {
	return nil, errors.New("sluice: runner not implemented yet")
}

// WriteTable writes the summary as an aligned text table.
func (s *Summary) WriteTable(w io.Writer) error {
	return errors.New("sluice: not implemented yet")
}
