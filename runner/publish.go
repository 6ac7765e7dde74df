package runner

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/stages"
)

// Retry pacing of publishes the server refused or did not acknowledge (a
// full stage buffer is the common case: that is backpressure).
// The pause starts again from the minimum whenever a round stored
// something, so a small buffer that drains quickly is refilled quickly.
var publishRetry = retry.Backoff{Min: 2 * time.Millisecond, Max: 250 * time.Millisecond}

// pubState is where one message of a publishBatch stands.
type pubState uint8

const (
	pubInFlight pubState = iota // published, ack awaited
	pubRetry                    // refused or failed; to publish again
	pubDone                     // acknowledged by JetStream (stored or a duplicate)
	pubFast                     // sent in the fast batch, its commit awaited (ordered: not known stored yet)
)

// publishStall is how long a publish may wait for its acknowledgement
// before it is sent again: an acknowledgement lost with a connection or a
// server that went away would otherwise be awaited forever. The message's
// Nats-Msg-Id makes sending it again safe.
const publishStall = 5 * time.Second

// newPublisher returns a JetStream context for a worker or source of the
// run to publish with. Its asynchronous publishes fail with ErrAsyncPublishTimeout once
// publishStall has passed without an acknowledgement (nats.go waits
// forever by default): the stall timer of [publishBatch.wait] alone does
// not see a wait that a caller cuts into short rounds, as a worker's
// settle does every settlePoll, and a publish whose acknowledgement was
// lost with a server stalled its worker for good.
func (r *run) newPublisher() (jetstream.JetStream, error) {
	js, err := jetstream.New(r.nc, jetstream.WithPublishAsyncMaxPending(4*batchSize), jetstream.WithPublishAsyncTimeout(publishStall))
	if err != nil {
		return nil, err
	}
	r.pubMu.Lock()
	r.pubs = append(r.pubs, js)
	r.pubMu.Unlock()
	return js, nil
}

// publishesSettled waits, until ctx ends, for every publish of the run's
// sources and workers to be acknowledged or to have failed. A publish
// the stop cut short (its input given back) may still be stored: once
// this returns it is, or never will be, so that nothing of this run lands
// in a stream after the run ended (where a --fresh run would take it in).
func (r *run) publishesSettled(ctx context.Context) {
	r.pubMu.Lock()
	pubs := slices.Clone(r.pubs)
	r.pubMu.Unlock()
	for _, js := range pubs {
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			return
		}
	}
}

// Fast-batch publishing: the stream's server acknowledges a whole batch
// at once (with flow control every so many messages) instead of each
// message. A batch that fails in any way is published again message by
// message (in ordered mode: see waitOrdered); the Nats-Msg-Id of every
// message makes that safe.
const (
	fastFlow     = 500 // messages between flow-control acks the server may use at most
	fastInFlight = 8   // flow-control windows in flight before the publisher waits
	fastCooldown = 16  // batches published message by message after a failed fast batch
)

// publishBatch publishes messages and waits until JetStream acknowledged
// each of them, publishing again those that failed. Messages for the
// stage's own stream go in one fast batch when the batch allows it; others
// (dead letters) are published asynchronously one by one. In ordered mode
// the stage's own messages are stored in the order they were added (see
// waitOrdered). A batch is reused across rounds with reset; it is owned by
// one goroutine.
type publishBatch struct {
	js    jetstream.JetStream
	msgs  []*nats.Msg
	futs  []jetstream.PubAckFuture
	state []pubState
	errs  []error
	seqs  map[int]uint64 // if not nil: the stream sequence of each message add stored

	fastOK   bool                       // the output stream accepts fast batches
	fast     jetstreamext.FastPublisher // the open fast batch, nil if none
	fastIdx  []int                      // messages sent in it
	fastErr  error                      // why it failed, nil while it works
	cooldown int                        // batches left before fast batches are tried again

	// Ordered mode: the owner sets ordered before use.
	ordered   bool
	outs      []int // the outputs (addOutput), in the order added
	stored    int   // outs[:stored] are acknowledged
	chunk     int   // outputs the next round sends, 0 for all that are left
	fastSent  int   // outputs sent in the open fast batch, from outs[stored]
	fastAcked int   // of those, how many its flow-control acks confirmed
}

// add publishes m asynchronously and returns its index in the batch. m
// must carry its Nats-Msg-Id header so that a retry is deduplicated.
func (b *publishBatch) add(m *nats.Msg) int {
	b.msgs = append(b.msgs, m)
	b.futs = append(b.futs, nil)
	b.state = append(b.state, pubInFlight)
	b.errs = append(b.errs, nil)
	i := len(b.msgs) - 1
	b.publish(i)
	return i
}

// addOutput publishes m, a message for the stage's own stream, in the
// fast batch if there is one or one can be opened, else as add does.
func (b *publishBatch) addOutput(m *nats.Msg) int {
	if b.ordered {
		return b.addOrdered(m)
	}
	if !b.fastOK || b.cooldown > 0 || b.fastErr != nil {
		return b.add(m)
	}
	if b.fast == nil {
		fp, err := newFastPublisher(b.js)
		if err != nil {
			b.fastErr = err
			return b.add(m)
		}
		b.fast = fp
	}
	b.msgs = append(b.msgs, m)
	b.futs = append(b.futs, nil)
	b.state = append(b.state, pubFast)
	b.errs = append(b.errs, nil)
	i := len(b.msgs) - 1
	b.fastIdx = append(b.fastIdx, i)
	if _, err := b.fast.AddMsg(m); err != nil {
		b.fastErr = err // the batch is closed; commit will publish it again
	}
	return i
}

// newFastPublisher opens a fast batch in gap mode "fail": the server
// stores the batch up to the first message it refuses, and no further.
func newFastPublisher(js jetstream.JetStream) (jetstreamext.FastPublisher, error) {
	return jetstreamext.NewFastPublisher(js, jetstreamext.FastPublishFlowControl{
		Flow:               fastFlow,
		MaxOutstandingAcks: fastInFlight,
	})
}

// commitFast ends the open fast batch. If the server did not acknowledge
// all of it, its messages are published again one by one.
func (b *publishBatch) commitFast(ctx context.Context) {
	if b.fast == nil {
		return
	}
	if b.fastErr == nil {
		cctx, cancel := context.WithTimeout(ctx, publishStall)
		ack, err := b.fast.Close(cctx)
		cancel()
		switch {
		case err != nil:
			b.fastErr = err
		case ack.BatchSize != uint64(len(b.fastIdx)):
			b.fastErr = errFastBatchShort
		}
	}
	for _, i := range b.fastIdx {
		if b.fastErr == nil {
			b.state[i] = pubDone
			continue
		}
		b.msgs[i].Reply = "" // the fast batch's reply subject
		b.errs[i] = b.fastErr
		b.markIfMaybeStored(i, b.fastErr)
		b.publish(i)
	}
	if b.fastErr != nil {
		b.cooldown = fastCooldown
	}
	b.fast, b.fastIdx, b.fastErr = nil, b.fastIdx[:0], nil
}

func (b *publishBatch) publish(i int) {
	f, err := b.js.PublishMsgAsync(b.msgs[i])
	if err != nil {
		b.futs[i], b.state[i], b.errs[i] = nil, pubRetry, err
		return
	}
	b.futs[i], b.state[i] = f, pubInFlight
}

// wait blocks until every message is acknowledged, retrying failures with
// a growing pause, or until ctx is done. It returns the number of messages
// not acknowledged; err(i) tells why for each. In ordered mode the outputs
// are published first, in order (waitOrdered), then the others awaited.
func (b *publishBatch) wait(ctx context.Context) int {
	if !b.ordered {
		b.commitFast(ctx)
	} else if left := b.waitOrdered(ctx); left > 0 {
		return left
	}
	rounds := 0 // refused in a row
	stall := time.NewTimer(publishStall)
	defer stall.Stop()
	for {
		failed, stored, stalled := 0, false, false
		for i := range b.msgs {
			if b.state[i] == pubInFlight && !stalled {
				select {
				case ack := <-b.futs[i].Ok():
					b.state[i], b.errs[i], stored = pubDone, nil, true
					if b.seqs != nil {
						b.seqs[i] = ack.Sequence
					}
					stall.Reset(publishStall)
				case err := <-b.futs[i].Err():
					b.state[i], b.errs[i] = pubRetry, err
				case <-stall.C:
					stalled = true
				case <-ctx.Done():
					return b.pending(ctx.Err())
				}
			}
			if stalled && b.state[i] == pubInFlight {
				b.state[i], b.errs[i] = pubRetry, errNoAck
			}
			if b.state[i] == pubRetry {
				failed++
			}
		}
		if stalled {
			stall.Reset(publishStall)
		}
		if failed == 0 {
			return 0
		}
		if stored {
			rounds = 0
		}
		if !retry.Sleep(ctx, publishRetry.Delay(rounds)) {
			return b.pending(ctx.Err())
		}
		rounds++
		for i := range b.msgs {
			if b.state[i] == pubRetry {
				b.markIfMaybeStored(i, b.errs[i])
				b.publish(i)
			}
		}
	}
}

// markIfMaybeStored marks message i with stages.HeaderRedelivered before
// it is sent again after err, unless err says that the server did not
// store it (it answered with an error: a full stream, mostly). A publish
// whose acknowledgement was lost may have been stored; if the server's
// dedup window passes before it is sent again (a server down for longer),
// the copy it stores is marked, so that a sink that deduplicates looks it
// up in all it wrote.
func (b *publishBatch) markIfMaybeStored(i int, err error) {
	var apiErr *jetstream.APIError
	if err == nil || errors.As(err, &apiErr) || errors.Is(err, nats.ErrNoResponders) {
		return
	}
	m := b.msgs[i]
	if m.Header == nil {
		m.Header = make(nats.Header, 1)
	}
	m.Header[stages.HeaderRedelivered] = redelivered
}

// addOrdered records m, an output in ordered mode, and sends it in the
// open fast batch, opening one for the first output. Once that batch has
// failed, or if the stream takes no fast batches, the rest is left to
// waitOrdered.
func (b *publishBatch) addOrdered(m *nats.Msg) int {
	b.msgs = append(b.msgs, m)
	b.futs = append(b.futs, nil)
	b.state = append(b.state, pubFast)
	b.errs = append(b.errs, nil)
	i := len(b.msgs) - 1
	b.outs = append(b.outs, i)
	if b.fastOK && b.fastErr == nil && b.stored+b.fastSent == len(b.outs)-1 {
		b.sendFast(i)
	}
	return i
}

// waitOrdered publishes the outputs not yet stored, in the order they were
// added, until JetStream acknowledged them all or ctx is done; it returns
// the number of messages not acknowledged then.
//
// What JetStream stored of the outputs is always a prefix of them: every
// round, a fast batch or a single publish, starts at the first output not
// known stored, and a fast batch in gap mode "fail" is stored in order up
// to the first message the server refuses (a full stream) and not beyond.
// Outputs the server stored without the client learning it are sent
// again: their Nats-Msg-Id makes them duplicates, which the server skips
// (within the stream's dedup window), so they keep their place.
//
// After a failed round the next one sends only the first output left, on
// its own, and each round acknowledged whole doubles what the next sends.
// So a full stream is not flooded with publishes it refuses, what is known
// stored catches up with what is in a few rounds, and outputs get through
// even if fast batches do not. Without fast batches (fastOK false) the
// outputs are published one at a time.
func (b *publishBatch) waitOrdered(ctx context.Context) int {
	rounds := 0 // refused in a row
	for b.stored < len(b.outs) {
		before := b.stored
		var err error
		switch {
		case b.fast != nil || b.fastErr != nil:
			err = b.closeFast(ctx) // the batch addOrdered sent
		case b.fastOK && b.chunk != 1:
			err = b.sendRound(ctx)
		default:
			err = b.sendOne(ctx)
		}
		if err == nil || b.stored == len(b.outs) {
			if b.chunk *= 2; b.chunk >= len(b.outs) {
				b.chunk = 0
			}
			rounds = 0
			continue
		}
		if ctx.Err() != nil {
			return b.pending(ctx.Err())
		}
		b.errs[b.outs[b.stored]] = err
		for _, i := range b.outs[b.stored:] {
			b.markIfMaybeStored(i, err)
		}
		b.chunk = 1
		if b.stored > before {
			rounds = 0
		}
		if !retry.Sleep(ctx, publishRetry.Delay(rounds)) {
			return b.pending(ctx.Err())
		}
		rounds++
	}
	return 0
}

// sendRound publishes the next chunk of the outputs not yet stored as a
// new fast batch and closes it.
func (b *publishBatch) sendRound(ctx context.Context) error {
	n := len(b.outs) - b.stored
	if b.chunk > 0 {
		n = min(n, b.chunk)
	}
	for _, i := range b.outs[b.stored : b.stored+n] {
		if b.sendFast(i); b.fastErr != nil {
			break
		}
	}
	return b.closeFast(ctx)
}

// sendFast sends output i in the fast batch, opening one if none is open.
// If that fails, fastErr says why and the batch takes no more.
func (b *publishBatch) sendFast(i int) {
	if b.fast == nil {
		fp, err := newFastPublisher(b.js)
		if err != nil {
			b.fastErr = err
			return
		}
		b.fast = fp
	}
	ack, err := b.fast.AddMsg(b.msgs[i])
	if err != nil {
		b.fastErr = err
		return
	}
	b.fastSent++
	b.fastAcked = max(b.fastAcked, int(ack.AckSequence))
}

// closeFast ends the open fast batch, if any, and marks as stored the
// outputs the server confirmed: those its acknowledgement counts, else
// those its flow-control acks covered. (A batch the server cuts short is
// acknowledged at once; the client drops that acknowledgement if it comes
// before Close, so what was stored after the last flow-control ack is then
// not known.) It returns nil if the server acknowledged the whole batch.
func (b *publishBatch) closeFast(ctx context.Context) error {
	fp, sent, acked, err := b.fast, b.fastSent, b.fastAcked, b.fastErr
	b.fast, b.fastSent, b.fastAcked, b.fastErr = nil, 0, 0, nil
	if fp != nil && err == nil {
		cctx, cancel := context.WithTimeout(ctx, publishStall)
		ack, cerr := fp.Close(cctx)
		cancel()
		switch {
		case cerr != nil:
			err = cerr
		case int(ack.BatchSize) < sent:
			err = errFastBatchShort
		}
		if cerr == nil {
			acked = max(acked, int(ack.BatchSize))
		}
	}
	b.markStored(min(acked, sent))
	return err
}

// sendOne publishes the first output not yet stored on its own and waits
// for its acknowledgement.
func (b *publishBatch) sendOne(ctx context.Context) error {
	m := b.msgs[b.outs[b.stored]]
	m.Reply = "" // a fast batch's reply subject
	f, err := b.js.PublishMsgAsync(m)
	if err != nil {
		return err
	}
	stall := time.NewTimer(publishStall)
	defer stall.Stop()
	select {
	case <-f.Ok():
		b.markStored(1)
		return nil
	case err := <-f.Err():
		return err
	case <-stall.C:
		return errNoAck
	case <-ctx.Done():
		return ctx.Err()
	}
}

// markStored marks the next n outputs not yet stored as stored.
func (b *publishBatch) markStored(n int) {
	for _, i := range b.outs[b.stored : b.stored+n] {
		b.state[i], b.errs[i] = pubDone, nil
	}
	b.stored += n
}

// pending marks every unacknowledged message with err and counts them.
func (b *publishBatch) pending(err error) int {
	n := 0
	for i := range b.msgs {
		if b.state[i] != pubDone {
			if b.errs[i] == nil {
				b.errs[i] = err
			}
			n++
		}
	}
	return n
}

// seq returns the stream sequence of message i, which add published and
// the server stored, if seqs is kept; 0 if not known.
func (b *publishBatch) seq(i int) uint64 { return b.seqs[i] }

// ok reports whether message i was acknowledged.
func (b *publishBatch) ok(i int) bool { return b.state[i] == pubDone }

// err returns why message i was not acknowledged.
func (b *publishBatch) err(i int) error { return b.errs[i] }

// ackedPrefix returns how many messages at the start of the batch are
// acknowledged.
func (b *publishBatch) ackedPrefix() int {
	for i, st := range b.state {
		if st != pubDone {
			return i
		}
	}
	return len(b.state)
}

// len returns the number of messages in the batch.
func (b *publishBatch) len() int { return len(b.msgs) }

// reset empties the batch for the next round.
func (b *publishBatch) reset() {
	if b.cooldown > 0 {
		b.cooldown--
	}
	clear(b.msgs)
	clear(b.futs)
	clear(b.errs)
	clear(b.seqs)
	b.msgs, b.futs, b.state, b.errs = b.msgs[:0], b.futs[:0], b.state[:0], b.errs[:0]
	b.outs, b.stored, b.chunk = b.outs[:0], 0, 0
}
