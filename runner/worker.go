package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// batchSize is how many messages a worker pulls ahead and processes as one
// batch: their outputs are published together and their acks follow the
// publish acks.
const batchSize = 2000

// action is what a worker does with an input once its publishes (outputs
// or dead letter) are acknowledged.
type action uint8

const (
	actAck  action = iota + 1 // processed: acknowledge
	actTerm                   // dead-lettered: terminate
	actDrop                   // failed with on_error: drop: acknowledge
	actNone                   // already nak'ed
)

// inFlight is one input of a batch and the publishes it waits on.
type inFlight struct {
	jm     jetstream.Msg
	lin    string // the input's lineage, what its outputs' IDs derive from
	first  int    // index of its first publish in the batch
	n      int    // number of publishes
	act    action
	filter bool // produced no output
}

// worker runs one replica of a transform or sink stage: it reads the
// stage's inputs, processes batches and acknowledges them.
type worker struct {
	run       *run
	stage     *pipeline.Stage
	idx       int
	inputs    []input
	feed      *feed            // the stage's feed in this process, shared by its workers
	transform stages.Transform // set for a transform stage
	sink      stages.Sink      // set for a sink stage
	stats     *stageStats
	log       *slog.Logger

	js      jetstream.JetStream
	subject string            // the stage's output subject
	routes  map[string]bool   // the routes the stage may send outputs on, "" its default output
	idBase  string            // "p/s/"
	idFanIn map[string]string // input stream -> "~<upstream stage>" when the stage has several
	idBuf   []byte            // reused to build message IDs
	pub     publishBatch
	batch   []inFlight
	msgs    []*stages.Message
	outs    []*stages.Message
}

func newWorker(r *run, st *pipeline.Stage, idx int, inputs []input, f *feed) (*worker, error) {
	js, err := jetstream.New(r.nc, jetstream.WithPublishAsyncMaxPending(4*batchSize))
	if err != nil {
		return nil, err
	}
	w := &worker{
		run:     r,
		stage:   st,
		idx:     idx,
		inputs:  inputs,
		feed:    f,
		stats:   r.stats[st.Name],
		log:     r.log.With("stage", st.Name, "worker", idx),
		js:      js,
		subject: pipeline.Subject(r.p.Name, st.Name),
		routes:  outputRoutes(st),
		idBase:  r.p.Name + "/" + st.Name + "/",
		idFanIn: make(map[string]string, len(inputs)),
	}
	w.pub.js, w.pub.fastOK = js, true
	for _, in := range inputs {
		if len(inputs) > 1 {
			w.idFanIn[in.stream] = "~" + in.stage
		}
	}
	return w, nil
}

// loop processes batches of what the stage's feed hands over until ctx
// is done, then returns after finishing the batch in hand; the feed naks
// what was pulled but not processed.
//
// The batch in hand is processed with hard, which the runner cancels some
// time after ctx: a stage that heeds its context gives up then.
func (w *worker) loop(ctx, hard context.Context) {
	ch := w.feed.ch
	for {
		w.batch = w.batch[:0]
		select {
		case jm := <-ch:
			w.batch = append(w.batch, inFlight{jm: jm})
		case <-ctx.Done():
			return
		}
	fill:
		for len(w.batch) < batchSize {
			select {
			case jm := <-ch:
				w.batch = append(w.batch, inFlight{jm: jm})
			default:
				break fill
			}
		}
		w.process(ctx, hard)
	}
}

// process handles w.batch: runs the stage, publishes outputs and dead
// letters, waits for their acks and then acks, terminates or naks inputs.
func (w *worker) process(stop, ctx context.Context) {
	w.pub.reset()
	w.msgs = w.msgs[:0]
	for i := range w.batch {
		f := &w.batch[i]
		meta, err := f.jm.Metadata()
		if err != nil {
			w.log.Error("message without JetStream metadata", "err", err)
			f.act = actNone
			continue
		}
		w.stats.in.Add(1)
		m := stages.NewMessage(f.jm.Data())
		m.Header = f.jm.Headers()
		m.Meta = stages.Meta{
			Subject:    f.jm.Subject(),
			Stream:     meta.Stream,
			Sequence:   meta.Sequence.Stream,
			Deliveries: meta.NumDelivered,
			Published:  meta.Timestamp,
		}
		f.lin = w.lineage(m)
		if w.transform != nil {
			w.processOne(ctx, f, m)
		} else {
			w.msgs = append(w.msgs, m)
		}
	}
	if w.sink != nil {
		w.write(ctx)
	}
	w.settle(stop)
}

// processOne runs the transform on one input and publishes its outputs.
func (w *worker) processOne(ctx context.Context, f *inFlight, m *stages.Message) {
	outs, err := w.safeProcess(ctx, m)
	w.outs = outs[:0]
	if err == nil {
		// Encode every output before publishing any, so that a record
		// that cannot be encoded fails its input as a whole.
		for _, o := range outs {
			var data []byte
			if data, err = o.Payload(); err != nil {
				break
			}
			if err = w.run.checkSize(data); err != nil {
				break
			}
			if !w.routes[o.Route] {
				err = stages.Permanent(fmt.Errorf("output on route %q, which %s %q does not declare", o.Route, w.stage.Role, w.stage.Type))
				break
			}
		}
	}
	if err != nil {
		w.fail(ctx, f, m, err)
		return
	}
	f.act, f.first, f.n = actAck, w.pub.len(), len(outs)
	if len(outs) == 0 {
		f.filter = true
		return
	}
	for i, o := range outs {
		data, _ := o.Payload()
		h := o.Header
		if h == nil {
			h = make(nats.Header, 1)
		}
		h[stages.HeaderMsgID] = []string{w.outputID(f.lin, i)}
		subject := w.subject
		if o.Route != "" {
			subject = w.subject + "." + o.Route
		}
		w.pub.addOutput(&nats.Msg{Subject: subject, Data: data, Header: h})
	}
}

// outputRoutes returns the routes stage st may send outputs on: those its
// type declares, or else only its default output "".
func outputRoutes(st *pipeline.Stage) map[string]bool {
	if st.Spec == nil || st.Spec.Routes == nil {
		return map[string]bool{"": true}
	}
	routes := make(map[string]bool)
	for _, r := range st.Spec.Routes(st.Params) {
		routes[r] = true
	}
	return routes
}

// outputID returns the Nats-Msg-Id of output i of an input of lineage
// lin, p/s/<lin>.<i>, built in one allocation.
func (w *worker) outputID(lin string, i int) string {
	b := append(w.idBuf[:0], w.idBase...)
	b = append(b, lin...)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(i), 10)
	w.idBuf = b
	return string(b)
}

// lineage returns what the IDs of the outputs of input m derive from: its
// own ID without the "p/u/" of the stage that published it, followed at a
// stage with several upstream stages by "~u". An ID so derived names a
// record by its path from the source record it came from, whatever stream
// sequences its ancestors got, so every copy of a record republished after
// a crash carries the same ID. An input published without an ID (by
// something other than sluice) is named by its stream and sequence.
func (w *worker) lineage(m *stages.Message) string {
	lin := ""
	if ids := m.Header[stages.HeaderMsgID]; len(ids) == 1 {
		lin = ids[0]
		for range 2 {
			i := strings.IndexByte(lin, '/')
			if i < 0 {
				lin = ""
				break
			}
			lin = lin[i+1:]
		}
	}
	if lin == "" {
		lin = m.Meta.Stream + ":" + strconv.FormatUint(m.Meta.Sequence, 10)
	}
	if fanIn := w.idFanIn[m.Meta.Stream]; fanIn != "" {
		lin += fanIn
	}
	return lin
}

// safeProcess runs the transform, turning a panic into an error.
func (w *worker) safeProcess(ctx context.Context, m *stages.Message) (outs []*stages.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, err = nil, fmt.Errorf("stage %q panicked: %v", w.stage.Name, r)
		}
	}()
	return w.transform.Process(ctx, m, w.outs[:0])
}

// write hands the batch to the sink and sorts its inputs by outcome.
func (w *worker) write(ctx context.Context) {
	if len(w.msgs) == 0 {
		return
	}
	err := w.safeWrite(ctx)
	var be *stages.BatchError
	perMsg := errors.As(err, &be) && len(be.Errs) == len(w.msgs)
	j := 0
	for i := range w.batch {
		f := &w.batch[i]
		if f.act == actNone {
			continue
		}
		m := w.msgs[j]
		e := err
		if perMsg {
			e = be.Errs[j]
		}
		j++
		if e != nil {
			w.fail(ctx, f, m, e)
			continue
		}
		f.act, f.first, f.n = actAck, w.pub.len(), 0
	}
}

// safeWrite runs the sink, turning a panic into an error.
func (w *worker) safeWrite(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage %q panicked: %v", w.stage.Name, r)
		}
	}()
	return w.sink.Write(ctx, w.msgs)
}

// fail handles an input whose processing failed, as the stage's on_error
// says: retry naks it with the stage's backoff until the last allowed
// attempt, or a permanent error, dead-letters it; dead_letter does so at
// once; drop acknowledges it and counts it.
func (w *worker) fail(ctx context.Context, f *inFlight, m *stages.Message, err error) {
	st := w.stage
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// The run stops and the stage gave up because it was told to:
		// not the message's fault, and not an attempt.
		_ = f.jm.Nak()
		f.act = actNone
		return
	case st.OnError == pipeline.OnErrorDrop:
		w.log.Warn("processing failed, message dropped", "err", err, "stream", m.Meta.Stream, "seq", m.Meta.Sequence)
		f.act, f.first, f.n = actDrop, w.pub.len(), 0
		return
	case st.OnError == pipeline.OnErrorRetry && !stages.IsPermanent(err) && m.Meta.Deliveries < uint64(st.MaxDeliver):
		w.stats.errors.Add(1)
		w.log.Warn("processing failed, will retry", "err", err, "stream", m.Meta.Stream, "seq", m.Meta.Sequence, "deliveries", m.Meta.Deliveries)
		_ = f.jm.NakWithDelay(st.RetryDelay(int(m.Meta.Deliveries)))
		f.act = actNone
		return
	}
	f.act, f.first, f.n = actTerm, w.pub.len(), 1
	w.pub.add(deadLetter(w.run.p.Name, st.Name, w.idBase+f.lin+"/dlq", f.jm.Subject(), f.jm.Data(), f.jm.Headers(), err, m.Meta.Deliveries, w.run.nc.MaxPayload()))
}

// settle waits for the batch's publishes and answers every input: ack or
// term once all its publishes are acknowledged. While the server refuses
// publishes (a full downstream buffer) it keeps retrying, and the feed
// keeps the inputs in progress; after stop, it naks what could not be
// published.
func (w *worker) settle(stop context.Context) {
	for {
		wctx, cancel := context.WithTimeout(context.Background(), settlePoll)
		left := w.pub.wait(wctx)
		cancel()
		if left == 0 || stop.Err() != nil {
			break
		}
	}
	for i := range w.batch {
		f := &w.batch[i]
		if f.act == actNone {
			continue
		}
		published := true
		for j := f.first; j < f.first+f.n; j++ {
			if !w.pub.ok(j) {
				published = false
				w.log.Warn("publish not acknowledged, input will be redelivered", "err", w.pub.err(j))
				break
			}
		}
		switch {
		case !published:
			_ = f.jm.Nak()
		case f.act == actTerm:
			w.stats.dead.Add(1)
			_ = f.jm.Term()
		case f.act == actDrop:
			w.stats.dropped.Add(1)
			_ = f.jm.Ack()
		case f.filter:
			w.stats.filtered.Add(1)
			_ = f.jm.Ack()
		default:
			if w.sink != nil {
				w.stats.out.Add(1)
			} else {
				w.stats.out.Add(uint64(f.n))
			}
			_ = f.jm.Ack()
		}
	}
	w.feed.held.done(w.batch)
	clear(w.batch)
	clear(w.msgs)
}

// settlePoll is how often a worker waiting on its publishes checks whether
// it is told to stop: once it is, it waits one more round at most, then
// naks what is not published.
const settlePoll = 250 * time.Millisecond
