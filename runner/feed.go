package runner

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/pipeline"
)

// A pull request lives pullExpiry; the server sends a heartbeat every
// pullHeartbeat while it waits, and the feed pulls again when two are
// missed. Shorter than nats.go's defaults (30s and 15s) so that a pull lost
// with a server or a consumer leader that moved is replaced in seconds.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// feed pulls a stage's inputs once per process and hands the messages to
// all of the stage's workers in this process through one channel: adding
// replicas adds processing goroutines, not pull subscriptions competing
// for the same consumer.
//
// It asks the server only for messages it has room for (see held), so a
// message is held, and kept in progress, from the moment it arrives: none
// waits unseen in a client buffer while its ack_wait runs out. The room is
// a batch per worker and one more waiting in ch, so that a worker finds
// its next batch there as it finishes one; at most half the consumer's
// max_ack_pending, so that processes sharing a stage all get work.
type feed struct {
	stage   *pipeline.Stage
	inputs  []input
	log     *slog.Logger
	ch      chan delivery // never full: it holds at most held.limit
	held    *held
	ackWait time.Duration
	most    int // most messages one pull asks for
	least   int // fewest messages one pull asks for

	// For partitioned inputs: the owner of the partitions, and one channel
	// per worker, so that each partition is processed by one worker.
	owner *owner
	chans []chan delivery

	cancel   context.CancelFunc
	pulling  sync.WaitGroup
	stopKeep chan struct{} // closed to end keepAlive
	keeping  sync.WaitGroup
}

// delivery is a message the feed hands to a worker, with what holds it
// and its partition (-1 for an input that is not partitioned).
type delivery struct {
	jm   jetstream.Msg
	h    *held
	part int
	// assign, without a message, tells the worker that partition part is
	// now its own: a Windowed transform loads the partition's state.
	assign bool
}

func newFeed(r *run, st *pipeline.Stage, inputs []input) *feed {
	limit := min(batchSize*(st.Replicas+1), defaultMaxAckPending/2)
	// Each input may ask for its share at once; a pull waits for room for
	// half a batch rather than asking for messages a few at a time.
	most := max(limit/max(len(inputs), 1), 1)
	f := &feed{
		stage:   st,
		inputs:  inputs,
		log:     r.log.With("stage", st.Name),
		held:    newHeld(limit),
		ackWait: r.p.Settings.AckWait,
		most:    most,
		least:   min(batchSize/2, most),
	}
	if len(inputs) > 0 && inputs[0].partition >= 0 {
		for range st.Replicas {
			f.chans = append(f.chans, make(chan delivery, batchSize))
		}
		f.owner = newOwner(f, r)
		return f
	}
	f.ch = make(chan delivery, limit)
	return f
}

// chanFor returns the channel worker i reads.
func (f *feed) chanFor(i int) chan delivery {
	if f.owner != nil {
		return f.chans[i]
	}
	return f.ch
}

// start begins pulling every input until ctx is done.
func (f *feed) start(ctx context.Context) {
	ctx, f.cancel = context.WithCancel(ctx)
	if f.owner != nil {
		f.pulling.Go(func() { f.owner.run(ctx) })
		return
	}
	f.stopKeep = make(chan struct{})
	f.keeping.Go(func() { f.held.keepAlive(f.ackWait, f.stopKeep) })
	for _, in := range f.inputs {
		f.pulling.Go(func() { f.pull(ctx, in) })
	}
}

// pull asks in's consumer for messages, as many as there is room for, and
// hands them to the workers, until ctx is done.
func (f *feed) pull(ctx context.Context, in input) {
	var fails int
	for {
		n := f.held.reserve(ctx, f.least, f.most)
		if n == 0 {
			return
		}
		got, err := f.fetch(ctx, in, n)
		f.held.unreserve(n - got)
		if ctx.Err() != nil {
			return
		}
		if err == nil || got > 0 {
			fails = 0
			continue
		}
		// No server, no consumer leader, missed heartbeats: try again,
		// a little later each time.
		fails++
		level := slog.LevelDebug
		if fails == 5 {
			level = slog.LevelWarn
		}
		f.log.Log(ctx, level, "cannot read input, retrying", "stream", in.stream, "err", err, "attempts", fails)
		if !retry.Sleep(ctx, pullRetry.Delay(fails-1)) {
			return
		}
	}
}

// pullRetry is the pause before pulling again after failed pulls in a
// row: 100 ms, doubling, at most 2 s.
var pullRetry = retry.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}

// fetch sends one pull request for n messages to in's consumer and hands
// over what arrives until n have or the request expires. It returns how
// many arrived.
func (f *feed) fetch(ctx context.Context, in input, n int) (int, error) {
	fctx, cancel := context.WithTimeout(ctx, pullExpiry)
	defer cancel()
	batch, err := in.consumer.Fetch(n, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(pullHeartbeat))
	if err != nil {
		return 0, err
	}
	got := 0
	for jm := range batch.Messages() {
		got++
		f.held.add(jm)
		f.ch <- delivery{jm: jm, h: f.held, part: -1}
	}
	err = batch.Error()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = nil
	}
	return got, err
}

// stop ends pulling once the workers have returned, and naks what was
// pulled but not processed.
func (f *feed) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.pulling.Wait()
	if f.owner != nil {
		f.owner.stop(f.chans)
		return
	}
	if f.stopKeep != nil {
		close(f.stopKeep)
		f.keeping.Wait()
	}
	for {
		select {
		case d := <-f.ch:
			_ = d.jm.Nak()
		default:
			return
		}
	}
}
