package runner

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// policy is a stage's failure policy: what becomes of an input the stage
// failed to process, as its on_error, max_deliver and backoff say, and on
// partitioned inputs (ordered) how often a failure is retried in place,
// so that the records after it in its partition wait for it.
type policy struct {
	stage   *pipeline.Stage
	ordered bool
	count   *counter
	log     *slog.Logger
}

// failure is what the policy does with an input that failed.
type failure uint8

const (
	failGiveBack   failure = iota + 1 // nak now: the run stops
	failRetryLater                    // nak with the backoff for its deliveries
	failDrop                          // acknowledge, count as dropped
	failDeadLetter                    // dead-letter, then terminate
)

// onFailure decides what becomes of input m, which failed with err after
// attempts retries in place; ctx is the one the stage was given.
//
// retry naks it with the stage's backoff until the last allowed attempt
// or a permanent error, then dead-letters it; dead_letter does so at
// once; drop acknowledges it. An error that is the stage giving up because
// ctx ended is not the message's fault, and not an attempt: the input goes
// back. Nor is an outage of the destination (stages.ErrOutage), which the
// worker held on until it was told to stop or max_outage passed: the
// input goes back too, whatever on_error says. On partitioned inputs a
// failure that may be retried was retried in place until the run was
// told to stop: the input goes back too.
func (p *policy) onFailure(ctx context.Context, m *stages.Message, err error, attempts int) failure {
	st := p.stage
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return failGiveBack
	case stages.IsOutage(err):
		return failGiveBack
	case st.OnError == pipeline.OnErrorDrop:
		return failDrop
	case st.OnError == pipeline.OnErrorRetry && !stages.IsPermanent(err) && p.tried(m, attempts) < uint64(st.MaxDeliver):
		if p.ordered {
			return failGiveBack
		}
		return failRetryLater
	}
	return failDeadLetter
}

// tried returns how often m was attempted: its deliveries and the retries
// in place after the last.
func (p *policy) tried(m *stages.Message, attempts int) uint64 {
	return m.Meta.Deliveries + uint64(attempts)
}

// canRetryInPlace reports whether input m, which failed with err after
// attempts retries in place, may be retried in place again. An outage is
// not: the worker holds on it instead (see outage).
func (p *policy) canRetryInPlace(m *stages.Message, err error, attempts int) bool {
	st := p.stage
	return p.ordered && st.OnError == pipeline.OnErrorRetry && !stages.IsPermanent(err) && !stages.IsOutage(err) &&
		int(p.tried(m, attempts)) < st.MaxDeliver
}

// retryInPlace reports whether input m, which failed with err after
// attempts retries in place, is to be tried again in place, after the
// stage's backoff; false once stop is done.
func (p *policy) retryInPlace(stop context.Context, m *stages.Message, err error, attempts int) bool {
	if !p.canRetryInPlace(m, err, attempts) || stop.Err() != nil {
		return false
	}
	tried := int(p.tried(m, attempts))
	p.count.attemptFailed(1)
	p.log.Warn("processing failed, will retry in place (partition order)", "err", err, "stream", m.Meta.Stream, "seq", m.Meta.Sequence, "attempts", tried)
	return retry.Sleep(stop, p.stage.RetryDelay(tried))
}

// fail applies the policy to input f of the batch, whose message m failed
// with err after attempts retries in place: a dead letter goes in pub.
func (w *worker) fail(ctx context.Context, f *inFlight, m *stages.Message, err error, attempts int) {
	p := &w.policy
	switch p.onFailure(ctx, m, err, attempts) {
	case failGiveBack:
		w.batch.giveBack(f)
	case failDrop:
		w.log.Warn("processing failed, message dropped", "err", err, "stream", m.Meta.Stream, "seq", m.Meta.Sequence)
		w.batch.dropped(f)
	case failRetryLater:
		w.log.Warn("processing failed, will retry", "err", err, "stream", m.Meta.Stream, "seq", m.Meta.Sequence, "deliveries", m.Meta.Deliveries)
		w.batch.retryLater(f, p.stage.RetryDelay(int(m.Meta.Deliveries)))
	case failDeadLetter:
		dl := deadLetter(w.run.p.Name, p.stage.Name, w.run.id, w.idBase+f.lin+"/dlq", f.msg.Subject(), f.msg.Data(), f.msg.Headers(), err, p.tried(m, attempts), w.run.nc.MaxPayload())
		w.run.keepWhole(ctx, dl, f.msg.Data())
		w.batch.deadLettered(f, w.pub.add(dl))
	}
}
