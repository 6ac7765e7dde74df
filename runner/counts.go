package runner

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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
//
// The counts of a batch are stored with its publishes, not after them, so
// that they cost no round trip of their own: the worker counts the batch
// as decided (count), publishes the counts with its outputs (message), and
// if an input then goes back to the server after all (a publish that
// failed when the run stopped), takes it out (uncount) and stores the
// counts again (store) before it answers any input.
type counter struct {
	r     *run
	stage string
	key   string
	stats *stageStats // the stage's counts in this process, which it adds to
	obs   *stageObs   // told of retries in place; nil without an Observer
	chain *chain      // the stages fused after the worker's, whose counts go in c.Fused; nil if none
	c     schema.Counts
	last  map[string][][2]uint64 // the batch's inputs acknowledged or terminated: stream -> ranges

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

// tally is what answering one input adds to the counts.
type tally struct {
	in, out, filtered, errors, dead, dropped uint64
}

// tallyOf returns what answering f as decided adds to the counts: an input
// that goes back to the server for a retry counts as in and an error, one
// acknowledged or terminated as in and what became of it, a watermark tick
// or end marker as the outputs a window emitted for it.
func tallyOf(f *inFlight) tally {
	switch {
	case f.control:
		return tally{out: uint64(f.out)}
	case f.act == actRetry:
		return tally{in: 1, errors: 1}
	case f.act == actTerm:
		return tally{in: 1, dead: 1}
	case f.act == actDrop:
		return tally{in: 1, dropped: 1}
	case f.act == actFilter:
		return tally{in: 1, filtered: 1}
	case f.act == actWritten:
		return tally{in: 1, out: 1}
	}
	return tally{in: 1, out: uint64(f.out)}
}

// add adds t to the counts, or takes it away.
func (c *counter) add(t tally, away bool) {
	if away {
		t = tally{-t.in, -t.out, -t.filtered, -t.errors, -t.dead, -t.dropped} // wraps: adding it subtracts
	}
	c.c.In += t.in
	c.c.Out += t.out
	c.c.Filtered += t.filtered
	c.c.Errors += t.errors
	c.c.Dead += t.dead
	c.c.Dropped += t.dropped
	c.stats.in.Add(t.in)
	c.stats.out.Add(t.out)
	c.stats.filtered.Add(t.filtered)
	c.stats.errors.Add(t.errors)
	c.stats.dead.Add(t.dead)
	c.stats.dropped.Add(t.dropped)
}

// count counts the inputs of b decided on, except those delivered again
// that another worker counted before.
func (c *counter) count(b *batch) {
	for i := range b.in {
		f := &b.in[i]
		if f.act == actNone || f.act == actNak || f.act == actCopy {
			continue
		}
		if f.again && !f.control && c.countedBefore(f.stream, f.seq) {
			continue
		}
		f.counted = true
		c.add(tallyOf(f), false)
		c.addFused(f, false)
	}
}

// addFused adds what f gave the stages fused after the worker's to their
// counts, or takes it away.
func (c *counter) addFused(f *inFlight, away bool) {
	if c.chain != nil && f.fused > 0 {
		c.chain.count(f.fused-1, away, c.c.Fused)
	}
}

// uncount takes f, counted, out of the counts: it goes back to the server.
func (c *counter) uncount(f *inFlight) {
	if f.counted {
		f.counted = false
		c.add(tallyOf(f), true)
		c.addFused(f, true)
	}
}

// attemptFailed counts n attempts that failed and are tried again in
// place.
func (c *counter) attemptFailed(n int) {
	c.obs.retried(n)
	c.add(tally{in: uint64(n), errors: uint64(n)}, false)
}

// message returns the message that stores the counts with the inputs of b
// that are to be acknowledged or terminated, or nil for a worker without
// a state bucket (a test's).
func (c *counter) message(b *batch) *nats.Msg {
	if c.r.kv == nil {
		return nil
	}
	clear(c.last)
	for i := range b.in {
		f := &b.in[i]
		if f.counted && f.act != actRetry && !f.control {
			rs := c.last[f.stream]
			if n := len(rs); n > 0 && rs[n-1][1]+1 == f.seq {
				rs[n-1][1] = f.seq
			} else {
				rs = append(rs, [2]uint64{f.seq, f.seq})
			}
			c.last[f.stream] = rs
		}
	}
	c.c.Last = c.last
	data, err := json.Marshal(c.c)
	if err != nil {
		return nil // cannot happen: plain numbers and strings
	}
	return &nats.Msg{Subject: "$KV." + c.r.kv.Bucket() + "." + c.key, Data: data}
}

// store stores the counts with the inputs of b to be acknowledged or
// terminated, and waits for the server. A failure is logged (once) and not
// returned: the records go on; the counts of a run resumed after a crash
// may then be off.
func (c *counter) store(ctx context.Context, b *batch) {
	m := c.message(b)
	if m == nil {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), countsStoreTimeout)
	_, err := c.r.kv.Put(sctx, c.key, m.Data)
	cancel()
	if err != nil && !c.warned {
		c.warned = true
		c.r.log.Warn("counts not stored: the summary of a resumed run may be off", "stage", c.stage, "err", err)
	}
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
	var out []schema.Counts
	err := r.eachOtherCounts(ctx, stage, func(_ string, c schema.Counts) { out = append(out, c) })
	return out, err
}

// eachOtherCounts calls fn with each counts of this run stored by the
// workers of stage ("*" for every stage) that are not of this process,
// and the key they are stored under.
func (r *run) eachOtherCounts(ctx context.Context, stage string, fn func(key string, c schema.Counts)) error {
	if r.kv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, countsStoreTimeout)
	defer cancel()
	lister, err := r.kv.ListKeysFiltered(ctx, schema.CountsKey(r.p.Name, stage, "*"))
	if err != nil {
		return err
	}
	for key := range lister.Keys() {
		if _, own := r.ownCounts.Load(key); own {
			continue
		}
		c, found, err := schema.GetJSON[schema.Counts](ctx, r.kv, key)
		if err != nil {
			return err
		}
		if found && c.Run == r.id {
			fn(key, c)
		}
	}
	return nil
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
// its checkpoint): what its workers counted, and what the workers of
// another stage counted for it when it ran fused after theirs.
func (r *run) runCounts(ctx context.Context, stage string, sum *StageSummary) error {
	own := schema.CountsKey(r.p.Name, stage, "")
	return r.eachOtherCounts(ctx, "*", func(key string, c schema.Counts) {
		if strings.HasPrefix(key, own) {
			addSummary(sum, schema.StageCounts{In: c.In, Out: c.Out, Filtered: c.Filtered, Errors: c.Errors, Dead: c.Dead, Dropped: c.Dropped})
		}
		for _, f := range c.Fused {
			if f.Stage == stage {
				addSummary(sum, f)
			}
		}
	})
}

// addSummary adds counts c to sum.
func addSummary(sum *StageSummary, c schema.StageCounts) {
	sum.In += c.In
	sum.Out += c.Out
	sum.Filtered += c.Filtered
	sum.Errors += c.Errors
	sum.DeadLetters += c.Dead
	sum.Dropped += c.Dropped
}
