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

	"github.com/sluicehq/sluice/internal/schema"
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
	jm      jetstream.Msg
	h       *held  // what holds it until it is answered
	part    int    // its partition, -1 if its input is not partitioned
	assign  bool   // no message: the partition was taken (see delivery)
	control bool   // a watermark tick or end marker
	lin     string // the input's lineage, what its outputs' IDs derive from
	first   int    // index of its first publish in the batch
	n       int    // number of publishes
	act     action
	filter  bool // produced no output
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

	js       jetstream.JetStream
	subject  string            // the stage's output subject
	routes   map[string]bool   // the routes the stage may send outputs on, "" its default output
	keys     *outputKeys       // nil unless the stage sets event_time or key
	idBase   string            // "p/s/"
	idFanIn  map[string]string // input stream -> "~<upstream stage>" when the stage has several
	idBuf    []byte            // reused to build message IDs
	pub      publishBatch
	batch    []inFlight
	msgs     []*stages.Message
	outs     []*stages.Message
	subjects []string // the subject of each output of the input in hand
	errs     []error  // the sink's error for each of msgs

	// In a pipeline with watermarks: what the worker hears and stamps; for
	// a Windowed transform, the partitions the batch touched and those
	// to load again from their checkpoint.
	marks       *marks
	windowed    stages.Windowed
	outSubjects []string
	touched     map[int]bool
	reload      map[int]bool

	// On partitioned inputs: failures are retried in place, and a
	// partition with an input given back gives back the rest of the batch.
	ordered  bool
	blocked  map[int]bool      // partitions given back in the batch in hand
	tries    []int             // retries in place of each of msgs
	retry    []*stages.Message // msgs written again
	retryIdx []int             // their indexes in msgs
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
		subject: schema.Subject(r.p.Name, st.Name),
		routes:  outputRoutes(st),
		idBase:  r.p.Name + "/" + st.Name + "/",
		idFanIn: make(map[string]string, len(inputs)),
	}
	if w.keys, err = newOutputKeys(r.p, st); err != nil {
		return nil, err
	}
	if f.owner != nil {
		w.ordered, w.blocked = true, make(map[int]bool)
	}
	if usesWatermarks(r.p) {
		channel := st.Name + "." + r.member + "." + strconv.Itoa(idx)
		w.marks, w.outSubjects = newMarks(channel, r.p.Settings.IdleTimeout), outputSubjects(r.p, st)
		w.touched, w.reload = make(map[int]bool), make(map[int]bool)
	}
	// A partitioned output keeps its order: publishes refused by a full
	// stream are sent again before those after them.
	w.pub.js, w.pub.fastOK, w.pub.ordered = js, true, st.Partitions > 0
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
	ch := w.feed.chanFor(w.idx)
	for {
		w.batch = w.batch[:0]
		select {
		case d := <-ch:
			w.batch = append(w.batch, inFlight{jm: d.jm, h: d.h, part: d.part, assign: d.assign})
		case <-ctx.Done():
			return
		}
	fill:
		for len(w.batch) < batchSize {
			select {
			case d := <-ch:
				w.batch = append(w.batch, inFlight{jm: d.jm, h: d.h, part: d.part, assign: d.assign})
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
	clear(w.blocked)
	now := time.Now()
	for i := range w.batch {
		f := &w.batch[i]
		if f.assign || w.reload[f.part] {
			// A partition taken (again): its state from its checkpoint.
			w.assign(ctx, f.part, now)
			if f.assign {
				f.act = actNone
				continue
			}
		}
		if w.blocked[f.part] {
			// An earlier input of its partition goes back to the server:
			// so does this one, to keep their order.
			_ = f.jm.Nak()
			f.act = actNone
			continue
		}
		meta, err := f.jm.Metadata()
		if err != nil {
			w.log.Error("message without JetStream metadata", "err", err)
			f.act = actNone
			continue
		}
		m := stages.NewMessage(f.jm.Data())
		m.Header = f.jm.Headers()
		m.Meta = stages.Meta{
			Subject:    f.jm.Subject(),
			Stream:     meta.Stream,
			Sequence:   meta.Sequence.Stream,
			Deliveries: meta.NumDelivered,
			Published:  meta.Timestamp,
			Partition:  max(f.part, 0),
		}
		f.lin = w.lineage(m)
		control := m.Header.Get(stages.HeaderControl)
		f.control = control != ""
		advance := int64(noMark)
		if w.marks != nil {
			before := w.marks.current(f.part)
			m.Meta.Watermark = markTime(before)
			if after := w.marks.observe(f.part, m.Header, control == controlEnd, now); after > before && w.windowed != nil {
				advance = after
			}
			w.touched[f.part] = true
		}
		switch {
		case f.control && w.transform != nil && advance != noMark:
			w.processOne(stop, ctx, f, m, false, advance)
		case f.control:
			// A tick or end marker: nothing to process.
			f.act, f.first, f.n = actAck, w.pub.len(), 0
		case w.transform != nil:
			w.stats.in.Add(1)
			w.processOne(stop, ctx, f, m, true, advance)
		default:
			w.stats.in.Add(1)
			w.msgs = append(w.msgs, m)
		}
	}
	if w.sink != nil {
		w.write(stop, ctx)
	}
	if w.marks != nil && w.sink == nil && w.marks.due(now) {
		w.sendTicks(now)
	}
	w.settle(stop)
}

// assign loads partition k's state from its checkpoint into a Windowed
// transform, and the watermark tracking stored with it. A failure leaves
// the partition to be loaded again before its next message.
func (w *worker) assign(ctx context.Context, k int, now time.Time) {
	if w.windowed == nil {
		return
	}
	b, err := w.windowed.Assign(ctx, k)
	if err != nil {
		w.log.Error("partition state not loaded; trying again with the next message", "partition", k, "err", err)
		w.reload[k] = true
		return
	}
	delete(w.reload, k)
	w.marks.restore(k, b, now)
}

// sendTicks publishes a tick of the worker's own watermark on every
// subject the stage publishes on.
func (w *worker) sendTicks(now time.Time) {
	h := make(nats.Header, 3)
	w.marks.stamp(h, now)
	mark := h.Get(stages.HeaderWatermark)
	for i, subject := range w.outSubjects {
		id := w.idBase + "wm/" + strings.ReplaceAll(mark, ";", "/") + "/" + strconv.Itoa(i)
		w.pub.addOutput(tickMsg(subject, id, controlTick, mark))
	}
}

// processOne runs the transform on one input and publishes its outputs.
// On a partitioned input a failure is retried in place, so that the
// records after it in its partition wait for it.
//
// With process false (a watermark tick or end marker) the transform does
// not see the message; with advance set, a Windowed transform then
// advances to that watermark, and its outputs count as the message's.
func (w *worker) processOne(stop, ctx context.Context, f *inFlight, m *stages.Message, process bool, advance int64) {
	outs, err := w.transformOne(ctx, m, process, advance)
	attempts := 0
	for err != nil && w.retryInPlace(stop, m, err, attempts) {
		attempts++
		outs, err = w.transformOne(ctx, m, process, advance)
	}
	if err != nil {
		w.fail(ctx, f, m, err, attempts)
		return
	}
	f.act, f.first, f.n = actAck, w.pub.len(), len(outs)
	if len(outs) == 0 {
		f.filter = true
		return
	}
	for i, o := range outs {
		data, _ := o.Payload()
		o.Header[stages.HeaderMsgID] = []string{w.outputID(f.lin, i)}
		w.pub.addOutput(&nats.Msg{Subject: w.subjects[i], Data: data, Header: o.Header})
	}
}

// retryInPlace reports, for a stage on partitioned inputs, whether input m
// that failed with err after attempts retries in place is to be tried
// again, after the stage's backoff; false once stop is done.
func (w *worker) retryInPlace(stop context.Context, m *stages.Message, err error, attempts int) bool {
	if !w.canRetryInPlace(m, err, attempts) || stop.Err() != nil {
		return false
	}
	tried := int(m.Meta.Deliveries) + attempts
	w.stats.errors.Add(1)
	w.log.Warn("processing failed, will retry in place (partition order)", "err", err, "stream", m.Meta.Stream, "seq", m.Meta.Sequence, "attempts", tried)
	return sleepCtx(stop, w.stage.RetryDelay(tried))
}

// canRetryInPlace reports whether input m, which failed with err after
// attempts retries in place, may be retried in place again.
func (w *worker) canRetryInPlace(m *stages.Message, err error, attempts int) bool {
	st := w.stage
	return w.ordered && st.OnError == pipeline.OnErrorRetry && !stages.IsPermanent(err) &&
		int(m.Meta.Deliveries)+attempts < st.MaxDeliver
}

// transformOne runs the transform on m, and encodes and keys its outputs
// (w.outs, their subjects in w.subjects).
func (w *worker) transformOne(ctx context.Context, m *stages.Message, process bool, advance int64) ([]*stages.Message, error) {
	outs, err := w.outs[:0], error(nil)
	if process {
		outs, err = w.safeProcess(ctx, m)
	}
	if err == nil && advance != noMark {
		outs, err = w.safeAdvance(ctx, m.Meta.Partition, markTime(advance), outs)
	}
	w.outs = outs[:0]
	now := time.Now()
	w.subjects = w.subjects[:0]
	if err == nil {
		// Encode every output and find its subject before publishing any,
		// so that a record that cannot be encoded or keyed fails its input
		// as a whole.
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
			if o.Header == nil {
				o.Header = make(nats.Header, 1)
			}
			if o != m {
				inheritHeaders(o, m)
			}
			if w.marks != nil {
				w.marks.stamp(o.Header, now)
			}
			subject := w.subject
			if o.Route != "" {
				subject = w.subject + "." + o.Route
			}
			if w.keys != nil {
				var part string
				if part, err = w.keys.apply(o); err != nil {
					break
				}
				if part != "" {
					subject = part
				}
			}
			w.subjects = append(w.subjects, subject)
		}
	}
	return outs, err
}

// inheritHeaders gives output o of input in the event time and key of in,
// unless the stage set its own: a transform that builds new messages keeps
// its records' event time.
func inheritHeaders(o, in *stages.Message) {
	for _, name := range []string{stages.HeaderEventTime, stages.HeaderKey} {
		if v, ok := in.Header[name]; ok {
			if _, set := o.Header[name]; !set {
				o.Header[name] = v
			}
		}
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

// safeAdvance advances the Windowed transform, turning a panic into an
// error.
func (w *worker) safeAdvance(ctx context.Context, k int, mark time.Time, out []*stages.Message) (outs []*stages.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, err = nil, fmt.Errorf("stage %q panicked: %v", w.stage.Name, r)
		}
	}()
	return w.windowed.Advance(ctx, k, mark, out)
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

// write hands the batch to the sink and sorts its inputs by outcome. On
// partitioned inputs the records that failed are written again in place,
// in order, before the batch is answered.
func (w *worker) write(stop, ctx context.Context) {
	if len(w.msgs) == 0 {
		return
	}
	w.errs = w.writeErrs(ctx, w.msgs, w.errs[:0])
	if w.ordered {
		w.tries = append(w.tries[:0], make([]int, len(w.msgs))...)
		w.rewrite(stop, ctx)
	}
	j := 0
	for i := range w.batch {
		f := &w.batch[i]
		if f.act == actNone || f.control {
			continue // not written
		}
		m, e := w.msgs[j], w.errs[j]
		tries := 0
		if w.ordered {
			tries = w.tries[j]
		}
		j++
		switch {
		case e != nil:
			w.fail(ctx, f, m, e, tries)
		case w.blocked[f.part]:
			// Written after an input of its partition that goes back to
			// the server: it goes back too, to be written again after it.
			_ = f.jm.Nak()
			f.act = actNone
		default:
			f.act, f.first, f.n = actAck, w.pub.len(), 0
		}
	}
}

// rewrite writes again, in order and after the stage's backoff, the
// messages of the batch that failed and may be retried in place, until
// none is left or stop is done.
func (w *worker) rewrite(stop, ctx context.Context) {
	for attempts := 0; ; attempts++ {
		w.retry, w.retryIdx = w.retry[:0], w.retryIdx[:0]
		for j, e := range w.errs {
			if e != nil && w.canRetryInPlace(w.msgs[j], e, attempts) {
				w.retry = append(w.retry, w.msgs[j])
				w.retryIdx = append(w.retryIdx, j)
			}
		}
		if len(w.retry) == 0 || stop.Err() != nil {
			return
		}
		first := w.retry[0]
		w.stats.errors.Add(uint64(len(w.retry)))
		w.log.Warn("writes failed, will write again in place (partition order)", "err", w.errs[w.retryIdx[0]], "records", len(w.retry), "stream", first.Meta.Stream, "seq", first.Meta.Sequence)
		if !sleepCtx(stop, w.stage.RetryDelay(int(first.Meta.Deliveries)+attempts)) {
			return
		}
		again := w.writeErrs(ctx, w.retry, nil)
		for i, j := range w.retryIdx {
			w.errs[j], w.tries[j] = again[i], attempts+1
		}
	}
}

// writeErrs writes msgs with the sink and returns the error of each,
// appended to errs: the sink's error for each message of a
// stages.BatchError, else its error for all.
func (w *worker) writeErrs(ctx context.Context, msgs []*stages.Message, errs []error) []error {
	err := w.safeWrite(ctx, msgs)
	var be *stages.BatchError
	perMsg := errors.As(err, &be) && len(be.Errs) == len(msgs)
	for j := range msgs {
		e := err
		if perMsg {
			e = be.Errs[j]
		}
		errs = append(errs, e)
	}
	return errs
}

// safeWrite runs the sink, turning a panic into an error.
func (w *worker) safeWrite(ctx context.Context, msgs []*stages.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("stage %q panicked: %v", w.stage.Name, r)
		}
	}()
	return w.sink.Write(ctx, msgs)
}

// fail handles an input whose processing failed, as the stage's on_error
// says: retry naks it with the stage's backoff until the last allowed
// attempt, or a permanent error, dead-letters it; dead_letter does so at
// once; drop acknowledges it and counts it.
//
// attempts is how often a stage on partitioned inputs retried the input in
// place. There an input given back to the server (the run stops) makes
// the inputs after it in its partition go back too.
func (w *worker) fail(ctx context.Context, f *inFlight, m *stages.Message, err error, attempts int) {
	st := w.stage
	tried := m.Meta.Deliveries + uint64(attempts)
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// The run stops and the stage gave up because it was told to:
		// not the message's fault, and not an attempt.
		_ = f.jm.Nak()
		f.act = actNone
		w.block(f)
		return
	case st.OnError == pipeline.OnErrorDrop:
		w.log.Warn("processing failed, message dropped", "err", err, "stream", m.Meta.Stream, "seq", m.Meta.Sequence)
		f.act, f.first, f.n = actDrop, w.pub.len(), 0
		return
	case st.OnError == pipeline.OnErrorRetry && !stages.IsPermanent(err) && tried < uint64(st.MaxDeliver):
		if w.ordered {
			// Retried in place until the run was told to stop.
			_ = f.jm.Nak()
			f.act = actNone
			w.block(f)
			return
		}
		w.stats.errors.Add(1)
		w.log.Warn("processing failed, will retry", "err", err, "stream", m.Meta.Stream, "seq", m.Meta.Sequence, "deliveries", m.Meta.Deliveries)
		_ = f.jm.NakWithDelay(st.RetryDelay(int(m.Meta.Deliveries)))
		f.act = actNone
		return
	}
	f.act, f.first, f.n = actTerm, w.pub.len(), 1
	w.pub.add(deadLetter(w.run.p.Name, st.Name, w.idBase+f.lin+"/dlq", f.jm.Subject(), f.jm.Data(), f.jm.Headers(), err, tried, w.run.nc.MaxPayload()))
}

// block marks the partition of f as going back to the server from f on,
// for a stage on partitioned inputs.
func (w *worker) block(f *inFlight) {
	if w.ordered {
		w.blocked[f.part] = true
	}
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
	if w.windowed != nil && !w.checkpoint(stop) {
		return
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
		case f.control:
			// What a window emitted as the watermark moved counts as out.
			w.stats.out.Add(uint64(f.n))
			_ = f.jm.Ack()
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
	w.forget()
	clear(w.msgs)
}

// forget forgets the answered messages of the batch, one lock for each
// run of messages of one holder.
func (w *worker) forget() {
	for i := 0; i < len(w.batch); {
		j := i + 1
		for j < len(w.batch) && w.batch[j].h == w.batch[i].h {
			j++
		}
		if h := w.batch[i].h; h != nil {
			h.done(w.batch[i:j])
		}
		i = j
	}
	clear(w.batch)
}

// checkpoint stores the state of a Windowed transform for the partitions
// the batch touched, once every output of the batch is stored and before
// the inputs are acknowledged. If an output is not stored (the run
// stops) or the state cannot be stored, it naks every input of the batch,
// in order, has the partitions loaded again from their last checkpoint
// before their next message, and reports false.
func (w *worker) checkpoint(stop context.Context) bool {
	err := errNotPublished
	if w.pub.pending(nil) == 0 {
		snaps := make(map[int][]byte, len(w.touched))
		for k := range w.touched {
			snaps[k] = w.marks.snapshot(k)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(stop), w.run.opts.StopTimeout)
		err = w.windowed.Checkpoint(ctx, snaps)
		cancel()
	}
	if err == nil {
		clear(w.touched)
		return true
	}
	if !errors.Is(err, errNotPublished) {
		w.log.Error("state not stored: the batch goes back to the server", "err", err)
	}
	for k := range w.touched {
		w.reload[k] = true
	}
	clear(w.touched)
	for i := range w.batch {
		if f := &w.batch[i]; f.act != actNone {
			_ = f.jm.Nak()
		}
	}
	w.forget()
	clear(w.msgs)
	return false
}

// errNotPublished: an output of the batch was not stored.
var errNotPublished = errors.New("outputs not stored")

// settlePoll is how often a worker waiting on its publishes checks whether
// it is told to stop: once it is, it waits one more round at most, then
// naks what is not published.
const settlePoll = 250 * time.Millisecond
