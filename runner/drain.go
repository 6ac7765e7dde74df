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
// nothing pending and
// nothing awaiting acknowledgement, checking stages in topological order,
// after the sources finished. A worker acks an input only after its
// outputs are stored downstream, so once a stage's consumers are empty
// and every stage before it has drained, it has published all it ever
// will: each stage needs to be seen empty once.
func waitDrained(ctx context.Context, p *pipeline.Pipeline, local []*pipeline.Stage, inputs map[string][]input) error {
	for _, s := range p.Order() {
		if !slices.Contains(local, s) {
			continue
		}
		for _, in := range inputs[s.Name] {
			pause := drainPollMin
			for {
				info, err := in.consumer.Info(ctx)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, jetstream.ErrConsumerNotFound) {
					return fmt.Errorf("stage %q: consumer on %s: %w", s.Name, in.stream, err)
				}
				if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
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
