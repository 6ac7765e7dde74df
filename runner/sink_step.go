package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/stages"
)

// sinkStep is the step of a sink stage: it writes the inputs of a batch
// with one call of the sink, which the stage's workers share, and sorts
// them by the sink's error for each.
type sinkStep struct {
	sink     stages.Sink
	msgs     []*stages.Message
	errs     []error           // the sink's error for each of msgs
	tries    []int             // ordered: retries in place of each of msgs
	retry    []*stages.Message // msgs written again: held, or ordered
	retryIdx []int             // their indexes in msgs
	again    []error           // the sink's error for each of retry
	obs      *stageObs         // nil without an Observer
}

// process writes the inputs of w's batch, except watermark ticks and end
// markers, which it acknowledges.
func (s *sinkStep) process(stop, ctx context.Context, w *worker, now time.Time) {
	b := &w.batch
	s.msgs = s.msgs[:0]
	for i := range b.in {
		f := &b.in[i]
		m, _, ok := w.prepare(ctx, f, now)
		switch {
		case !ok:
		case f.control:
			// A tick or end marker: nothing to write.
			b.published(f, w.pub.len(), 0)
		default:
			s.msgs = append(s.msgs, m)
		}
	}
	s.write(stop, ctx, w)
	clear(s.msgs)
	clear(s.retry)
}

// write hands the batch to the sink and sorts its inputs by outcome. The
// records that failed because the destination is down are held and
// written again in place, in order, until it is back (see hold); on
// partitioned inputs so are the records that failed otherwise, as the
// policy allows, before the batch is answered.
func (s *sinkStep) write(stop, ctx context.Context, w *worker) {
	if len(s.msgs) == 0 {
		return
	}
	w.trace.beginWrites(s.msgs)
	s.errs = s.writeErrs(ctx, w.stage.Name, s.msgs, s.errs[:0])
	s.hold(stop, ctx, w)
	if w.policy.ordered {
		s.tries = append(s.tries[:0], make([]int, len(s.msgs))...)
		s.rewrite(stop, ctx, w)
	}
	w.trace.endWrites(s.errs)
	b := &w.batch
	j := 0
	for i := range b.in {
		f := &b.in[i]
		if f.act == actNone || f.control {
			continue // not written
		}
		m, e := s.msgs[j], s.errs[j]
		tries := 0
		if w.policy.ordered {
			tries = s.tries[j]
		}
		j++
		switch {
		case e != nil:
			w.fail(ctx, f, m, e, tries)
		case b.blocked(f.part):
			// Written after an input of its partition that goes back to
			// the server: it goes back too, to be written again after it.
			b.giveBack(f)
		default:
			b.written(f)
		}
	}
}

// rewrite writes again, in order and after the stage's backoff, the
// messages of the batch that failed and may be retried in place, until
// none is left or stop is done.
func (s *sinkStep) rewrite(stop, ctx context.Context, w *worker) {
	p := &w.policy
	for attempts := 0; ; attempts++ {
		s.retry, s.retryIdx = s.retry[:0], s.retryIdx[:0]
		for j, e := range s.errs {
			if e != nil && p.canRetryInPlace(s.msgs[j], e, attempts) {
				s.retry = append(s.retry, s.msgs[j])
				s.retryIdx = append(s.retryIdx, j)
			}
		}
		if len(s.retry) == 0 || stop.Err() != nil {
			return
		}
		first := s.retry[0]
		w.count.attemptFailed(len(s.retry))
		w.log.Warn("writes failed, will write again in place (partition order)", "err", s.errs[s.retryIdx[0]], "records", len(s.retry), "stream", first.Meta.Stream, "seq", first.Meta.Sequence)
		if !retry.Sleep(stop, p.stage.RetryDelay(int(first.Meta.Deliveries)+attempts)) {
			return
		}
		s.again = s.writeErrs(ctx, w.stage.Name, s.retry, s.again[:0])
		for i, j := range s.retryIdx {
			s.errs[j], s.tries[j] = s.again[i], attempts+1
		}
		s.hold(stop, ctx, w)
	}
}

// hold writes again, in order, the messages of the batch that failed
// because the destination is down (errors marked stages.ErrOutage),
// holding the worker with a capped backoff between tries, until none
// fails so or the worker gives up on them (stop done, max_outage passed,
// the run failed): those then go back to the server, not to the
// dead-letter stream.
func (s *sinkStep) hold(stop, ctx context.Context, w *worker) {
	for {
		s.retry, s.retryIdx = s.retry[:0], s.retryIdx[:0]
		for j, e := range s.errs {
			if stages.IsOutage(e) {
				s.retry = append(s.retry, s.msgs[j])
				s.retryIdx = append(s.retryIdx, j)
			}
		}
		if len(s.retry) == 0 {
			w.endHold(true)
			return
		}
		if !w.holdOn(stop, s.errs[s.retryIdx[0]]) {
			w.endHold(false)
			return
		}
		s.again = s.writeErrs(ctx, w.stage.Name, s.retry, s.again[:0])
		for i, j := range s.retryIdx {
			s.errs[j] = s.again[i]
		}
	}
}

// writeErrs writes msgs with the sink and returns the error of each,
// appended to errs: the sink's error for each message of a
// stages.BatchError, else its error for all.
func (s *sinkStep) writeErrs(ctx context.Context, stage string, msgs []*stages.Message, errs []error) []error {
	err := s.safeWrite(ctx, stage, msgs)
	var be *stages.BatchError
	perMsg := errors.As(err, &be) && len(be.Errs) == len(msgs)
	for j := range msgs {
		e := err
		if perMsg {
			e = be.Errs[j]
		}
		errs = append(errs, e)
	}
	return errs
}

// safeWrite runs the sink, turning a panic into an error.
func (s *sinkStep) safeWrite(ctx context.Context, stage string, msgs []*stages.Message) (err error) {
	defer s.obs.write(s.obs.now(), len(msgs))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage %q panicked: %v", stage, r)
		}
	}()
	return s.sink.Write(ctx, msgs)
}
