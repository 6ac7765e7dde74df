package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// drainPoll is the pace of asking whether a stage has drained: fast at
// first, so that a small job ends at once.
var drainPoll = retry.Backoff{Min: 5 * time.Millisecond, Max: 200 * time.Millisecond}

// waitDrained returns once every consumer of the local stages of p has
// acknowledged every message its stream holds for it, checking stages in
// topological order, after the sources finished. A worker acks an input
// only after its outputs are stored downstream, so once a stage's
// consumers are done and every stage before it has drained, it has
// published all it ever will: each stage needs to be seen done once.
//
// Before a stage that acts on watermarks is waited for, every stage
// before it must have drained; then no input can come any more, and an
// end marker on each of its inputs moves its watermark to the end of time,
// so that it emits every open window before it drains.
func (r *run) waitDrained(ctx context.Context, local []*pipeline.Stage, inputs map[string][]input) error {
	p := r.p
	for _, s := range p.Order() {
		if !slices.Contains(local, s) {
			continue
		}
		if s.Spec != nil && s.Spec.Watermarks {
			for _, a := range ancestors(p, s) {
				if err := waitInputs(ctx, a, inputs[a.Name]); err != nil {
					return err
				}
			}
			if err := r.endInputs(ctx, s, inputs[s.Name]); err != nil {
				return err
			}
		}
		if err := waitInputs(ctx, s, inputs[s.Name]); err != nil {
			return err
		}
	}
	return nil
}

// waitInputs waits until every input of stage s is drained.
func waitInputs(ctx context.Context, s *pipeline.Stage, ins []input) error {
	for _, in := range ins {
		for polls := 0; ; polls++ {
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
			if !retry.Sleep(ctx, drainPoll.Delay(polls)) {
				return ctx.Err()
			}
		}
	}
	return nil
}

// endInputs publishes an end marker on every input of stage s: its
// partition of the upstream stream, or the upstream's default output.
func (r *run) endInputs(ctx context.Context, s *pipeline.Stage, ins []input) error {
	js, err := jetstream.New(r.nc)
	if err != nil {
		return err
	}
	mark := formatMark("end", stages.EndOfTime.UnixMilli(), false)
	for _, in := range ins {
		subject := schema.Subject(r.p.Name, in.stage)
		if in.partition >= 0 {
			subject = schema.PartitionSubject(r.p.Name, in.stage, in.partition)
		}
		id := fmt.Sprintf("%s/%s/r%d/end/%s/%d", r.p.Name, s.Name, r.id, in.stage, in.partition)
		if _, err := js.PublishMsg(ctx, tickMsg(subject, id, controlEnd, mark)); err != nil {
			return fmt.Errorf("stage %q: end marker on %s: %w", s.Name, subject, err)
		}
	}
	return nil
}

// ancestors returns the stages s reads from, directly or not, in
// topological order.
func ancestors(p *pipeline.Pipeline, s *pipeline.Stage) []*pipeline.Stage {
	up := map[string]bool{}
	var visit func(st *pipeline.Stage)
	visit = func(st *pipeline.Stage) {
		for _, in := range st.From {
			if !up[in.Stage] {
				up[in.Stage] = true
				visit(p.Stage(in.Stage))
			}
		}
	}
	visit(s)
	var out []*pipeline.Stage
	for _, st := range p.Order() {
		if up[st.Name] {
			out = append(out, st)
		}
	}
	return out
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
	var last uint64
	for _, subj := range filterSubjects(info.Config) {
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
