package runner

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// batchSize is how many messages a worker pulls ahead and processes as one
// batch: their outputs are published together and their acks follow the
// publish acks.
const batchSize = 2000

// inputMsg is what the worker loop uses of an input message. A
// jetstream.Msg is one; tests give the loop their own.
type inputMsg interface {
	Data() []byte
	Headers() nats.Header
	Subject() string
	Metadata() (*jetstream.MsgMetadata, error)
	Ack() error
	Nak() error
	NakWithDelay(delay time.Duration) error
	Term() error
	InProgress() error
}

var _ inputMsg = jetstream.Msg(nil)

// action is what a worker does with an input once its publishes (outputs
// or dead letter) are acknowledged. The zero value: not decided yet.
type action uint8

const (
	actAck     action = iota + 1 // outputs published: acknowledge
	actFilter                    // processed, no output: acknowledge
	actWritten                   // written by the sink: acknowledge
	actTerm                      // dead-lettered: terminate
	actDrop                      // failed with on_error: drop: acknowledge
	actRetry                     // failed: nak with a delay, for another attempt
	actNak                       // a publish failed: nak, for another delivery at once
	actCopy                      // a copy of an input taken before: acknowledge, count nothing
	actNone                      // already answered, or nothing to answer
)

// inFlight is one input of a batch and the publishes it waits on.
type inFlight struct {
	msg     inputMsg
	h       *held  // what holds it until it is answered
	part    int    // its partition, -1 if its input is not partitioned
	assign  bool   // no message: the partition was taken (see delivery)
	control bool   // a watermark tick or end marker
	lin     string // the input's lineage, what its outputs' IDs derive from
	stream  string // the stream it was read from, and its sequence there
	seq     uint64
	again   bool          // delivered more than once
	counted bool          // in the worker's counts (see counter)
	first   int           // index of its first publish in the batch
	n       int           // number of publishes
	out     int           // number of outputs of the stage
	fused   int           // with a fused chain after the stage: 1 + its index in the chain's batch, else 0
	delay   time.Duration // actRetry: before it is delivered again
	act     action
}

// batch is the inputs a worker has in hand and what becomes of each. The
// methods that decide an input's action are the only places that set it.
//
// On partitioned inputs (ordered) a partition with an input given back to
// the server gives back the rest of its inputs in the batch, to keep their
// order: blocked reports those partitions.
type batch struct {
	in      []inFlight
	ordered bool
	given   map[int]bool // ordered: partitions given back in the batch in hand
}

func newBatch(ordered bool) batch {
	b := batch{ordered: ordered}
	if ordered {
		b.given = make(map[int]bool)
	}
	return b
}

// add appends what the feed handed over.
func (b *batch) add(d delivery) {
	b.in = append(b.in, inFlight{msg: d.jm, h: d.h, part: d.part, assign: d.assign})
}

// blocked reports whether partition k gave back an input in this batch.
func (b *batch) blocked(k int) bool { return b.given[k] }

// published decides that f is acknowledged once its n publishes from
// index first are: its outputs, or none (filtered).
func (b *batch) published(f *inFlight, first, n int) {
	b.chained(f, first, n, n, -1)
}

// chained decides that f, whose out outputs went through the fused chain
// after the stage as its input k, is acknowledged once its n publishes
// from index first are (those of the chain's last transform, or the dead
// letters of the chain's stages); with no output, it was filtered. With
// k < 0 its outputs are its publishes, and there is no chain.
func (b *batch) chained(f *inFlight, first, n, out, k int) {
	f.act, f.first, f.n, f.out, f.fused = actAck, first, n, out, k+1
	if out == 0 {
		f.act = actFilter
	}
}

// written decides that f, which the sink wrote, is acknowledged.
func (b *batch) written(f *inFlight) { f.act, f.first, f.n = actWritten, 0, 0 }

// copied decides that f, a copy of an input a Windowed transform took
// before, is acknowledged without being processed or counted.
func (b *batch) copied(f *inFlight) { f.act, f.first, f.n = actCopy, 0, 0 }

// dropped decides that f, which failed under on_error: drop, is
// acknowledged and counted as dropped.
func (b *batch) dropped(f *inFlight) { f.act, f.first, f.n = actDrop, 0, 0 }

// deadLettered decides that f is terminated once its dead letter, publish
// i, is acknowledged.
func (b *batch) deadLettered(f *inFlight, i int) { f.act, f.first, f.n = actTerm, i, 1 }

// giveBack naks f now, for the server to deliver it again at once; on
// partitioned inputs the rest of its partition in the batch follows it.
func (b *batch) giveBack(f *inFlight) {
	_ = f.msg.Nak()
	f.act = actNone
	if b.ordered {
		b.given[f.part] = true
	}
}

// giveBackFrom naks every input from index i on that is not decided on
// yet: the worker stops, and they are delivered again, at once, to the
// next worker or run.
func (b *batch) giveBackFrom(i int) {
	for j := i; j < len(b.in); j++ {
		if f := &b.in[j]; f.act == 0 {
			if f.msg != nil {
				_ = f.msg.Nak()
			}
			f.act = actNone
		}
	}
}

// retryLater decides that f is nak'ed for the server to deliver it again
// after delay.
func (b *batch) retryLater(f *inFlight, delay time.Duration) {
	f.act, f.first, f.n, f.delay = actRetry, 0, 0, delay
}

// skip leaves f unanswered: it has no message, or one the loop cannot
// read.
func (b *batch) skip(f *inFlight) { f.act = actNone }

// answer answers every input decided on, once the batch's publishes are
// settled: acks or terminates it if all its publishes in pub are
// acknowledged, else naks it. The inputs were counted with c, and the
// counts published as publish countsAt (-1 if not): an input that goes
// back is taken out of the counts, which are then stored again, before any
// input is answered (see counter).
func (b *batch) answer(ctx context.Context, pub *publishBatch, countsAt int, c *counter, log *slog.Logger) {
	restore := countsAt >= 0 && !pub.ok(countsAt)
	for i := range b.in {
		f := &b.in[i]
		if f.act == actNone {
			continue
		}
		for j := f.first; j < f.first+f.n; j++ {
			if !pub.ok(j) {
				log.Warn("publish not acknowledged, input will be redelivered", "err", pub.err(j))
				c.uncount(f)
				f.act, restore = actNak, true
				break
			}
		}
	}
	if restore {
		c.store(ctx, b)
	}
	for i := range b.in {
		f := &b.in[i]
		switch f.act {
		case actNone:
		case actNak:
			_ = f.msg.Nak()
		case actRetry:
			_ = f.msg.NakWithDelay(f.delay)
		case actTerm:
			if f.control {
				_ = f.msg.Ack()
			} else {
				_ = f.msg.Term()
			}
		default:
			_ = f.msg.Ack()
		}
	}
}

// giveBackAll naks every input decided on, in order: the batch goes back
// to the server as a whole, out of the counts of c, which it stores again.
func (b *batch) giveBackAll(ctx context.Context, c *counter) {
	for i := range b.in {
		if f := &b.in[i]; f.act != actNone {
			c.uncount(f)
			f.act = actNak
		}
	}
	c.store(ctx, b)
	for i := range b.in {
		if f := &b.in[i]; f.act == actNak {
			_ = f.msg.Nak()
		}
	}
}

// forget forgets the answered inputs with their holders, one lock for each
// run of inputs of one holder, and empties the batch.
func (b *batch) forget() {
	for i := 0; i < len(b.in); {
		j := i + 1
		for j < len(b.in) && b.in[j].h == b.in[i].h {
			j++
		}
		if h := b.in[i].h; h != nil {
			h.done(b.in[i:j])
		}
		i = j
	}
	clear(b.in)
	b.in = b.in[:0]
	clear(b.given)
}
