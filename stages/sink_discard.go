package stages

import (
	"context"
	"sync/atomic"
)

func discardSpec() Spec {
	return Spec{
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

var _ Sink = (*discardSink)(nil)

func newDiscardSink(Params, Info) (Sink, error) { return &discardSink{}, nil }

func (s *discardSink) Write(_ context.Context, batch []*Message) error {
	s.n.Add(uint64(len(batch)))
	return nil
}

func (s *discardSink) Close(context.Context) error { return nil }
