package runner

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/sluicehq/sluice/internal/schema"
)

// counter counts what one worker does in a run and stores it in the state
// bucket (schema.Counts) before the worker answers a batch, so that the
// counts of a run add up over every process that took part, and across
// kill -9: an input is counted when it is answered, and an input delivered
// again that a worker had acknowledged in its last stored batch (its
// acknowledgement lost with the process) is not counted again.
type counter struct {
	r     *run
	stage string
	key   string
	stats *stageStats // the stage's counts in this process, which it adds to
	c     schema.Counts
	last  map[string][][2]uint64 // the batch being answered: stream -> ranges

	// Other workers' last batches, read when a batch has inputs delivered
	// again, at most once every countsReload.
	others   map[string][][2]uint64
	loadedAt time.Time
	warned   bool
}

// countsReload is the least time between two reads of the other workers'
// counts.
const countsReload = time.Second

// countsStoreTimeout bounds storing a worker's counts.
const countsStoreTimeout = 5 * time.Second

func newCounter(r *run, stage string, stats *stageStats) *counter {
	c := &counter{r: r, stage: stage, key: schema.CountsKey(r.p.Name, stage, nuid.Next()), stats: stats, last: make(map[string][][2]uint64)}
	c.c.Run = r.id
	r.ownCounts.Store(c.key, true)
	return c
}

// answered counts input f, answered as it says: an input that went back to
// the server for a retry counts as in and an error, one acknowledged or
// terminated as in and what became of it. final tells that f will not be
// delivered again (acknowledged or terminated): it goes into the batch's
// stored list.
func (c *counter) answered(f *inFlight, final bool) {
	if f.again && c.countedBefore(f.stream, f.seq) {
		return
	}
	if final {
		c.note(f.stream, f.seq)
	}
	switch {
	case f.act == actRetry:
		c.attemptFailed(1)
	case f.act == actTerm:
		c.c.In++
		c.c.Dead++
		c.stats.in.Add(1)
		c.stats.dead.Add(1)
	case f.act == actDrop:
		c.c.In++
		c.c.Dropped++
		c.stats.in.Add(1)
		c.stats.dropped.Add(1)
	case f.act == actFilter:
		c.c.In++
		c.c.Filtered++
		c.stats.in.Add(1)
		c.stats.filtered.Add(1)
	case f.act == actWritten:
		c.c.In++
		c.c.Out++
		c.stats.in.Add(1)
		c.stats.out.Add(1)
	default:
		c.c.In++
		c.c.Out += uint64(f.n)
		c.stats.in.Add(1)
		c.stats.out.Add(uint64(f.n))
	}
}

// emitted counts n outputs that no input is answered for: what a window
// emitted as the watermark moved.
func (c *counter) emitted(n int) {
	c.c.Out += uint64(n)
	c.stats.out.Add(uint64(n))
}

// attemptFailed counts n attempts that failed and are tried again.
func (c *counter) attemptFailed(n int) {
	c.c.In += uint64(n)
	c.c.Errors += uint64(n)
	c.stats.in.Add(uint64(n))
	c.stats.errors.Add(uint64(n))
}

// note adds input seq of stream to the batch's list.
func (c *counter) note(stream string, seq uint64) {
	rs := c.last[stream]
	if n := len(rs); n > 0 && rs[n-1][1]+1 == seq {
		rs[n-1][1] = seq
	} else {
		rs = append(rs, [2]uint64{seq, seq})
	}
	c.last[stream] = rs
}

// store stores the counts with the batch's list, which it then empties.
// A failure is logged (once) and not returned: the records go on, the
// counts of a run resumed after a crash may then be off.
func (c *counter) store(ctx context.Context) {
	if c.r.kv == nil {
		// A worker without a state bucket (a test's): nothing to store.
		clear(c.last)
		return
	}
	c.c.Last = c.last
	b, err := json.Marshal(c.c)
	if err == nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), countsStoreTimeout)
		_, err = c.r.kv.Put(sctx, c.key, b)
		cancel()
	}
	if err != nil && !c.warned {
		c.warned = true
		c.r.log.Warn("counts not stored: the summary of a resumed run may be off", "stage", c.stage, "err", err)
	}
	clear(c.last)
}

// countedBefore reports whether input seq of stream is in the last batch
// another worker stored.
func (c *counter) countedBefore(stream string, seq uint64) bool {
	if time.Since(c.loadedAt) >= countsReload {
		c.loadedAt = time.Now()
		others, err := c.r.otherCounts(context.Background(), c.stage)
		if err != nil {
			c.r.log.Warn("cannot read the counts of other workers", "stage", c.stage, "err", err)
		}
		c.others = make(map[string][][2]uint64)
		for _, o := range others {
			for s, rs := range o.Last {
				c.others[s] = append(c.others[s], rs...)
			}
		}
	}
	return slices.ContainsFunc(c.others[stream], func(r [2]uint64) bool { return r[0] <= seq && seq <= r[1] })
}

// otherCounts returns the counts of this run stored by the workers of
// stage that are not of this process.
func (r *run) otherCounts(ctx context.Context, stage string) ([]schema.Counts, error) {
	if r.kv == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, countsStoreTimeout)
	defer cancel()
	lister, err := r.kv.ListKeysFiltered(ctx, schema.CountsKey(r.p.Name, stage, "*"))
	if err != nil {
		return nil, err
	}
	var out []schema.Counts
	for key := range lister.Keys() {
		if _, own := r.ownCounts.Load(key); own {
			continue
		}
		c, found, err := schema.GetJSON[schema.Counts](ctx, r.kv, key)
		if err != nil {
			return out, err
		}
		if found && c.Run == r.id {
			out = append(out, c)
		}
	}
	return out, nil
}

// forgetCounts deletes the counts the workers of pipeline p stored in
// earlier runs.
func forgetCounts(ctx context.Context, kv jetstream.KeyValue, p string) error {
	lister, err := kv.ListKeysFiltered(ctx, schema.CountsKey(p, "*", "*"))
	if err != nil {
		return err
	}
	var errs []error
	for key := range lister.Keys() {
		if err := kv.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runCounts adds to sum what the other processes that took part in the
// run counted for stage, a transform or sink (a source's counts are in
// its checkpoint).
func (r *run) runCounts(ctx context.Context, stage string, sum *StageSummary) error {
	others, err := r.otherCounts(ctx, stage)
	for _, o := range others {
		sum.In += o.In
		sum.Out += o.Out
		sum.Filtered += o.Filtered
		sum.Errors += o.Errors
		sum.DeadLetters += o.Dead
		sum.Dropped += o.Dropped
	}
	return err
}
