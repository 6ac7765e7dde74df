package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
)

// Drain polling pace: fast at first, so that a small job ends at once.
const (
	drainPollMin = 5 * time.Millisecond
	drainPollMax = 200 * time.Millisecond
)

// waitDrained returns once every consumer of the local stages of p has
// acknowledged every message its stream holds for it, checking stages in
// topological order, after the sources finished. A worker acks an input
// only after its outputs are stored downstream, so once a stage's
// consumers are done and every stage before it has drained, it has
// published all it ever will: each stage needs to be seen done once.
func waitDrained(ctx context.Context, p *pipeline.Pipeline, local []*pipeline.Stage, inputs map[string][]input) error {
	for _, s := range p.Order() {
		if !slices.Contains(local, s) {
			continue
		}
		for _, in := range inputs[s.Name] {
			pause := drainPollMin
			for {
				done, err := in.drained(ctx)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
					return fmt.Errorf("stage %q: consumer on %s: %w", s.Name, in.stream, err)
				}
				if done {
					break
				}
				// Not drained, or not known now (the server is away): ask
				// again.
				if !sleepCtx(ctx, pause) {
					return ctx.Err()
				}
				pause = min(2*pause, drainPollMax)
			}
		}
	}
	return nil
}

// drained reports whether the consumer has acknowledged every message its
// stream holds on the subjects it reads. The consumer's own count of
// pending messages is not enough: the server updates it asynchronously, so
// just after a publish it may still be zero, and a message nak'ed with a
// delay counts as neither pending nor awaiting acknowledgement. The
// acknowledgement floor is exact: it is below every message not yet
// acknowledged.
func (in input) drained(ctx context.Context) (bool, error) {
	info, err := in.consumer.Info(ctx)
	if err != nil {
		return false, err
	}
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return false, nil
	}
	filters := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		filters = append(filters, info.Config.FilterSubject)
	}
	var last uint64
	for _, subj := range filters {
		m, err := in.str.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // none left on it
		}
		if err != nil {
			return false, err
		}
		last = max(last, m.Sequence)
	}
	return info.AckFloor.Stream >= last, nil
}
