package runner

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Retry pacing of publishes the server refused or did not acknowledge (a
// full stage buffer is the common case: that is backpressure).
// The pause starts again from the minimum whenever a round stored
// something, so a small buffer that drains quickly is refilled quickly.
const (
	publishRetryMin = 2 * time.Millisecond
	publishRetryMax = 250 * time.Millisecond
)

// pubState is where one message of a publishBatch stands.
type pubState uint8

const (
	pubInFlight pubState = iota // published, ack awaited
	pubRetry                    // refused or failed; to publish again
	pubDone                     // acknowledged by JetStream (stored or a duplicate)
)

// publishBatch publishes messages asynchronously and waits until JetStream
// acknowledged each of them, publishing again those that failed. A batch is
// reused across rounds with reset; it is owned by one goroutine.
type publishBatch struct {
	js    jetstream.JetStream
	msgs  []*nats.Msg
	futs  []jetstream.PubAckFuture
	state []pubState
	errs  []error
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
// not acknowledged; err(i) tells why for each.
func (b *publishBatch) wait(ctx context.Context) int {
	pause := publishRetryMin
	for {
		failed, stored := 0, false
		for i := range b.msgs {
			if b.state[i] == pubInFlight {
				select {
				case <-b.futs[i].Ok():
					b.state[i], b.errs[i], stored = pubDone, nil, true
				case err := <-b.futs[i].Err():
					b.state[i], b.errs[i] = pubRetry, err
				case <-ctx.Done():
					return b.pending(ctx.Err())
				}
			}
			if b.state[i] == pubRetry {
				failed++
			}
		}
		if failed == 0 {
			return 0
		}
		if stored {
			pause = publishRetryMin
		}
		if !sleepCtx(ctx, pause) {
			return b.pending(ctx.Err())
		}
		pause = min(2*pause, publishRetryMax)
		for i := range b.msgs {
			if b.state[i] == pubRetry {
				b.publish(i)
			}
		}
	}
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

// ok reports whether message i was acknowledged.
func (b *publishBatch) ok(i int) bool { return b.state[i] == pubDone }

// err returns why message i was not acknowledged.
func (b *publishBatch) err(i int) error { return b.errs[i] }

// len returns the number of messages in the batch.
func (b *publishBatch) len() int { return len(b.msgs) }

// reset empties the batch for the next round.
func (b *publishBatch) reset() {
	clear(b.msgs)
	clear(b.futs)
	clear(b.errs)
	b.msgs, b.futs, b.state, b.errs = b.msgs[:0], b.futs[:0], b.state[:0], b.errs[:0]
}

// sleepCtx pauses for d; it returns false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
