package main

// The baseline: a JetStream hop written by hand with nats.go's jetstream
// package, the reference every sluice figure is compared with. It does what
// a careful Go developer writes for "consume, change one field, republish,
// effectively once": a durable pull consumer shared by the workers, batches
// pulled ahead, each record decoded into a struct and encoded again, every
// output published asynchronously with a Nats-Msg-Id derived from its
// input, and every input acknowledged only after the publish
// acknowledgement of its output. It is tuned: one JetStream context per
// worker with a large async window, messages, headers and the encoding
// buffer reused from batch to batch.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// Baseline tuning. Both pull styles were measured (docs/performance.md);
// the defaults are the faster on the development machine.
const (
	defaultBaselineBatch = 1000
	defaultBaselinePull  = pullMessages
	// baselineAsyncMax is the async publish window of a worker's
	// JetStream context: larger than any batch, so a batch never stalls.
	baselineAsyncMax = 16_384
	// fetchMaxWait bounds a Fetch that finds fewer messages than asked;
	// the workers then fetch again.
	fetchMaxWait = 250 * time.Millisecond
	// publishAckTimeout bounds the wait for a batch's publish acks.
	publishAckTimeout = 30 * time.Second
)

// Pull styles of the baseline workers.
const (
	pullMessages = "messages" // Consumer.Messages iterator, fed to the worker by a goroutine
	pullFetch    = "fetch"    // Consumer.Fetch, the next batch requested before the acks of this one
)

// stageStreamConfig is the configuration sluice gives a stage stream
// (runner/provision.go streamConfig with the pipeline settings the
// benchmark uses), so that the baseline pays the same server costs.
func stageStreamConfig(name, subject, storage string, maxMsgs int) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:              name,
		Subjects:          []string{subject, subject + ".>"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.InterestPolicy,
		MaxMsgs:           int64(maxMsgs),
		Discard:           jetstream.DiscardNew,
		Duplicates:        pipeline.DefaultDedupWindow,
		Replicas:          1,
		AllowBatchPublish: true,
	}
	if storage == "memory" {
		cfg.Storage = jetstream.MemoryStorage
	}
	return cfg
}

// stageConsumerConfig is the configuration sluice gives the durable
// consumer of a stage (runner/provision.go).
func stageConsumerConfig(durable, subject string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       durable,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 20_000,
		FilterSubject: subject,
	}
}

// recordCodec is one worker's JSON state: the record it decodes into, and
// an encoder writing into a buffer that holds a batch's outputs until
// their publishes are acknowledged.
type recordCodec struct {
	o   Order
	buf appendWriter
	enc *json.Encoder
}

func newRecordCodec(capacity int) *recordCodec {
	c := &recordCodec{buf: make(appendWriter, 0, capacity)}
	c.enc = json.NewEncoder(&c.buf)
	return c
}

// appendWriter is an io.Writer that appends to itself.
type appendWriter []byte

func (w *appendWriter) Write(p []byte) (int, error) {
	*w = append(*w, p...)
	return len(p), nil
}

// reset forgets the outputs of the previous batch.
func (c *recordCodec) reset() { c.buf = c.buf[:0] }

func (c *recordCodec) decode(in []byte) error {
	c.o = Order{}
	return json.Unmarshal(in, &c.o)
}

// encode encodes the record; the bytes stay valid until reset. If the
// buffer grows, earlier outputs keep the old array, so they stay valid too.
func (c *recordCodec) encode() ([]byte, error) {
	start := len(c.buf)
	if err := c.enc.Encode(&c.o); err != nil {
		return nil, err
	}
	return c.buf[start : len(c.buf)-1 : len(c.buf)-1], nil // without Encode's newline
}

// hopOp is the work of a hop on one record: it returns the output, or
// keep false to filter the record out.
type hopOp func(c *recordCodec, in []byte) (out []byte, keep bool, err error)

// opDoubleAmount doubles amount: the transform of every hop scenario.
func opDoubleAmount(c *recordCodec, in []byte) ([]byte, bool, error) {
	if err := c.decode(in); err != nil {
		return nil, false, err
	}
	c.o.Amount *= 2
	out, err := c.encode()
	return out, true, err
}

// opKeepNonNegative keeps records with amount >= 0 (all of them) and
// passes them on unchanged, as sluice's filter does.
func opKeepNonNegative(c *recordCodec, in []byte) ([]byte, bool, error) {
	if err := c.decode(in); err != nil {
		return nil, false, err
	}
	return in, c.o.Amount >= 0, nil
}

// opShip sets status to "shipped".
func opShip(c *recordCodec, in []byte) ([]byte, bool, error) {
	if err := c.decode(in); err != nil {
		return nil, false, err
	}
	c.o.Status = "shipped"
	out, err := c.encode()
	return out, true, err
}

// baselineHop describes one hand-written hop.
type baselineHop struct {
	stream   string // the input stream
	durable  string // the durable consumer on it that the workers share
	subject  string // output subject; empty for a terminal that only acks
	idPrefix string // Nats-Msg-Id of an output: idPrefix + input stream sequence
	op       hopOp  // nil for a terminal
	workers  int
	batch    int
	pull     string // pullMessages or pullFetch
}

// runBaselineHop runs the hop's workers until ctx is done; each finishes
// the batch in hand. It returns the first error of a worker.
func runBaselineHop(ctx context.Context, nc *nats.Conn, h baselineHop) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var first error
	for i := range h.workers {
		w, err := newBaselineWorker(ctx, nc, &h)
		if err != nil {
			stopped := ctx.Err() != nil // told to stop while starting: no failure
			cancel(err)
			wg.Wait()
			if stopped && first == nil {
				return nil
			}
			return errors.Join(first, fmt.Errorf("baseline worker %d: %w", i, err))
		}
		wg.Go(func() {
			var err error
			if h.pull == pullFetch {
				err = w.runFetch(ctx)
			} else {
				err = w.runMessages(ctx)
			}
			if err != nil {
				errOnce.Do(func() { first = fmt.Errorf("baseline worker %d: %w", i, err) })
				cancel(err)
			}
		})
	}
	wg.Wait()
	return first
}

// inAction is what a worker does with an input when its batch settles.
type inAction uint8

const (
	actNone            inAction = iota // already answered (terminated or nak'ed)
	actAck                             // no output: ack
	actAckAfterPublish                 // ack if its output's publish was acknowledged, else nak
)

// baselineWorker is one worker of a hop. Its JetStream context is its
// own, so that waiting for its publishes waits for nobody else's.
type baselineWorker struct {
	h        *baselineHop
	js       jetstream.JetStream
	consumer jetstream.Consumer // the shared durable, bound through js
	codec    *recordCodec

	ins  []jetstream.Msg // the batch's inputs
	outs []nats.Msg      // their outputs, reused across batches; outs[i] belongs to ins[i]
	act  []inAction      // what to do with ins[i] once the batch's publishes are acknowledged

	mu     sync.Mutex
	failed map[*nats.Msg]error // publishes that failed, filled by the async error handler
}

func newBaselineWorker(ctx context.Context, nc *nats.Conn, h *baselineHop) (*baselineWorker, error) {
	w := &baselineWorker{
		h:      h,
		codec:  newRecordCodec(h.batch * 320),
		ins:    make([]jetstream.Msg, 0, h.batch),
		outs:   make([]nats.Msg, h.batch),
		act:    make([]inAction, h.batch),
		failed: make(map[*nats.Msg]error),
	}
	for i := range w.outs {
		w.outs[i] = nats.Msg{Subject: h.subject, Header: nats.Header{stages.HeaderMsgID: []string{""}}}
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(baselineAsyncMax),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			w.mu.Lock()
			w.failed[m] = err
			w.mu.Unlock()
		}))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	w.js = js
	if w.consumer, err = js.Consumer(ctx, h.stream, h.durable); err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", h.durable, h.stream, err)
	}
	return w, nil
}

// runMessages reads through a Messages iterator: a goroutine moves
// messages from the iterator to a channel, and the worker takes what is
// ready (at least one message, at most a batch) and processes it.
func (w *baselineWorker) runMessages(ctx context.Context) error {
	it, err := w.consumer.Messages(jetstream.PullMaxMessages(w.h.batch))
	if err != nil {
		return fmt.Errorf("open iterator: %w", err)
	}
	ch := make(chan jetstream.Msg, w.h.batch)
	var feeder sync.WaitGroup
	defer func() {
		it.Stop()
		feeder.Wait()
		for jm := range ch { // pulled but not processed: give back
			_ = jm.Nak()
		}
	}()
	feeder.Go(func() {
		defer close(ch)
		for {
			jm, err := it.Next()
			if err != nil {
				return // the iterator was stopped
			}
			select {
			case ch <- jm:
			case <-ctx.Done():
				_ = jm.Nak()
				return
			}
		}
	})
	for {
		w.ins = w.ins[:0]
		select {
		case jm, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("message iterator stopped")
			}
			w.ins = append(w.ins, jm)
		case <-ctx.Done():
			return nil
		}
	fill:
		for len(w.ins) < w.h.batch {
			select {
			case jm, ok := <-ch:
				if !ok {
					break fill // the iterator stopped: settle this batch, fail on the next
				}
				w.ins = append(w.ins, jm)
			default:
				break fill
			}
		}
		w.codec.reset()
		for i := range w.ins {
			w.processOne(i)
		}
		if err := w.settle(); err != nil {
			return err
		}
	}
}

// runFetch reads with Fetch, processing each message as it arrives, and
// asks for the next batch before waiting for this one's publish acks, so
// that delivery overlaps the wait.
func (w *baselineWorker) runFetch(ctx context.Context) error {
	fetch := func() (jetstream.MessageBatch, error) {
		return w.consumer.Fetch(w.h.batch, jetstream.FetchMaxWait(fetchMaxWait))
	}
	next, err := fetch()
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	for {
		cur := next
		next = nil
		w.ins = w.ins[:0]
		w.codec.reset()
		for jm := range cur.Messages() {
			w.ins = append(w.ins, jm)
			w.processOne(len(w.ins) - 1)
		}
		if err := cur.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("fetch: %w", err)
		}
		if ctx.Err() == nil {
			if next, err = fetch(); err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
		}
		if err := w.settle(); err != nil {
			return err
		}
		if next == nil {
			return nil
		}
	}
}

// processOne runs the hop on input i and publishes its output.
func (w *baselineWorker) processOne(i int) {
	jm := w.ins[i]
	w.act[i] = actAck
	if w.h.op == nil {
		return // a terminal: nothing to publish
	}
	out, keep, err := w.h.op(w.codec, jm.Data())
	if err != nil {
		_ = jm.Term() // a record that cannot be decoded never will be
		w.act[i] = actNone
		return
	}
	if !keep {
		return
	}
	meta, err := jm.Metadata()
	if err != nil {
		_ = jm.Term()
		w.act[i] = actNone
		return
	}
	m := &w.outs[i]
	m.Data = out
	m.Header[stages.HeaderMsgID][0] = w.h.idPrefix + strconv.FormatUint(meta.Sequence.Stream, 10)
	if _, err := w.js.PublishMsgAsync(m); err != nil {
		_ = jm.Nak()
		w.act[i] = actNone
		return
	}
	w.act[i] = actAckAfterPublish
}

// settle waits until every publish of the batch is acknowledged, then
// acks each input whose output is stored (or that had none) and naks the
// others for redelivery.
func (w *baselineWorker) settle() error {
	t := time.NewTimer(publishAckTimeout)
	defer t.Stop()
	select {
	case <-w.js.PublishAsyncComplete():
	case <-t.C:
		return fmt.Errorf("publish acks missing after %s", publishAckTimeout)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, jm := range w.ins {
		switch w.act[i] {
		case actAck:
			_ = jm.Ack()
		case actAckAfterPublish:
			if _, bad := w.failed[&w.outs[i]]; bad {
				_ = jm.Nak()
			} else {
				_ = jm.Ack()
			}
		}
	}
	clear(w.failed)
	clear(w.ins)
	return nil
}
