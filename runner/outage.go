package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/internal/retry"
)

// outageBackoff is the pause between tries of records held by a
// destination that is down: 100 ms, doubling, at most 30 s, less up to a
// fifth at random so that workers held together spread out.
var outageBackoff = retry.Backoff{Min: 100 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.2}

// outage is a worker held by a destination that is down: a stage failed
// on records of the batch in hand with errors marked stages.ErrOutage.
// The worker keeps the records (the feed keeps them in progress), tries
// them again in place with outageBackoff, and takes no new input
// meanwhile, so its feed stops pulling once its room is full and
// backpressure reaches the source. Such failures are not attempts: they
// count toward neither max_deliver nor the errors of the summary.
type outage struct {
	since time.Time // when the worker became held; zero when it is not
	tries int       // tries since
}

// holdOn holds w on err, an outage of its stage's destination, and
// pauses before the next try. It reports whether to try again: false once
// stop is done or the run failed, and once the stage's max_outage has
// passed, which fails the run. Then the caller gives the records back.
func (w *worker) holdOn(stop context.Context, err error) bool {
	if stop.Err() != nil || w.run.failure() != nil {
		return false // not held anew while stopping
	}
	now := time.Now()
	o := &w.outage
	if o.since.IsZero() {
		o.since, o.tries = now, 0
		if w.stats.hold.begin(now, err) {
			w.log.Warn("destination unavailable: stage held, its records kept until it is back", "err", err, "max_outage", w.stage.MaxOutage.String())
		}
	}
	down := now.Sub(o.since)
	limit := w.stage.MaxOutage
	if limit > 0 && down >= limit {
		w.run.fail(fmt.Errorf("%w: stage %q: down for %s (max_outage %s); its records were given back, not dead-lettered: %w",
			ErrMaxOutage, w.stage.Name, down.Round(time.Millisecond), limit, err))
		return false
	}
	pause := outageBackoff.Delay(o.tries)
	if limit > 0 {
		pause = min(pause, limit-down)
	}
	o.tries++
	return retry.Sleep(stop, pause) && w.run.failure() == nil
}

// endHold ends w's hold, if it is held: the destination took the records
// (recovered), or they are given back.
func (w *worker) endHold(recovered bool) {
	if w.outage.since.IsZero() {
		return
	}
	w.outage = outage{}
	if d, last := w.stats.hold.end(time.Now()); last && recovered {
		w.log.Info("destination back: stage resumed", "held", d.Round(time.Millisecond).String())
	}
}
