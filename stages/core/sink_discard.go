package core

import (
	"context"
	"sync/atomic"

	"github.com/sluicehq/sluice/stages"
)

func discardSpec() stages.Spec {
	return stages.Spec{
		Name:    "discard",
		Summary: "Drop every record, for benchmarks",
		Doc: `Counts the messages it is given and drops them, acknowledging each at ` +
			`once. Use it to measure a pipeline without the cost of an output.

Example:

    - name: drop
      sink: discard`,
		NewSink: newDiscardSink,
	}
}

// discardSink counts and drops.
type discardSink struct {
	n atomic.Uint64
}

var _ stages.Sink = (*discardSink)(nil)

func newDiscardSink(stages.Params, stages.Info) (stages.Sink, error) { return &discardSink{}, nil }

func (s *discardSink) Write(_ context.Context, batch []*stages.Message) error {
	s.n.Add(uint64(len(batch)))
	return nil
}

func (s *discardSink) Close(context.Context) error { return nil }
