package runner

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// worker runs one replica of a transform or sink stage: it reads the
// stage's inputs in batches (Read), has its step process them (Process),
// publishes the outputs and dead letters (Forward) and, once JetStream
// has acknowledged those, answers each input (Ack).
//
// Its parts: the batch in hand and what becomes of each input (batch),
// the stage's failure policy (policy), the step that runs the stage
// (transformStep or sinkStep), the publishes (publishBatch), and in a
// pipeline with watermarks the watermarks and windows (windowPart).
type worker struct {
	run   *run
	stage *pipeline.Stage
	idx   int
	feed  *feed // the stage's feed in this process, shared by its workers
	stats *stageStats
	count *counter
	log   *slog.Logger

	idBase  string            // "p/s/"
	idFanIn map[string]string // input stream -> "~<upstream stage>" when the stage has several

	batch  batch
	policy policy
	step   step
	pub    publishBatch
	window *windowPart // nil without watermarks
	chain  *chain      // the stages fused after a transform's, nil if none (see pipeline.Pipeline.Chains)
	outage outage      // held by a destination that is down
	obs    *stageObs   // nil without an Observer
	trace  *stageTrace // nil with tracing off
}

// step is what a worker does with the inputs of the batch in hand: it
// prepares each (worker.prepare), runs the stage on them, puts their
// outputs and dead letters in w.pub and decides on each in w.batch.
type step interface {
	process(stop, ctx context.Context, w *worker, now time.Time)
}

var (
	_ step = (*transformStep)(nil)
	_ step = (*sinkStep)(nil)
)

// newWorker returns worker idx of stage st, reading inputs from feed f: a
// sink stage's worker writes with sink, which its workers share; a
// transform stage's runs t, its own.
func newWorker(r *run, st *pipeline.Stage, idx int, inputs []input, f *feed, sink stages.Sink, t stages.Transform) (*worker, error) {
	js, err := r.newPublisher()
	if err != nil {
		return nil, err
	}
	w := &worker{
		run:     r,
		stage:   st,
		idx:     idx,
		feed:    f,
		stats:   r.stats[st.Name],
		log:     r.log.With("stage", st.Name, "worker", idx),
		idBase:  r.p.Name + "/" + st.Name + "/",
		idFanIn: make(map[string]string, len(inputs)),
	}
	// On partitioned inputs, failures are retried in place, and a
	// partition with an input given back gives back the rest of the batch.
	ordered := f.owner != nil
	w.batch = newBatch(ordered)
	w.count = newCounter(r, st.Name, w.stats)
	w.obs = newStageObs(r, st.Name, st.Role, nil)
	w.count.obs = w.obs
	w.trace = newStageTrace(r, st)
	w.policy = policy{stage: st, ordered: ordered, count: w.count, log: w.log}
	if st.Role == stages.RoleSink {
		w.step = &sinkStep{sink: sink, obs: w.obs}
	} else if w.step, err = newTransformStep(r, st, t); err != nil {
		return nil, err
	}
	var windowed stages.Windowed
	if st.Spec != nil && st.Spec.Watermarks {
		windowed, _ = t.(stages.Windowed)
	}
	w.window = newWindowPart(r, st, idx, windowed, w.log)
	if w.window != nil && windowed != nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.StopTimeout)
		w.window.intake, err = newIntake(ctx, r, st)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", st.Name, err)
		}
		w.pub.seqs = make(map[int]uint64)
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
// is done, or the run failed, then returns after settling the batch in
// hand (a transform step takes no further input of it once ctx is done:
// see transformStep.process); the feed naks what was pulled but not
// processed.
//
// The batch in hand is processed with hard, which the runner cancels some
// time after ctx: a stage that heeds its context gives up then.
func (w *worker) loop(ctx, hard context.Context) {
	ch := w.feed.chanFor(w.idx)
	for {
		select {
		case d := <-ch:
			w.batch.add(d)
		case <-ctx.Done():
			return
		}
	fill:
		for len(w.batch.in) < batchSize {
			select {
			case d := <-ch:
				w.batch.add(d)
			default:
				break fill
			}
		}
		w.process(ctx, hard)
		if w.run.failure() != nil {
			return
		}
	}
}

// process handles the batch in hand: runs the stage, publishes outputs and
// dead letters, waits for their acks and then acks, terminates or naks
// inputs.
func (w *worker) process(stop, ctx context.Context) {
	w.pub.reset()
	w.obs.begin()
	if w.chain != nil {
		w.chain.begin()
	}
	w.step.process(stop, ctx, w, time.Now())
	if w.chain != nil && !w.flushChain(stop, ctx) {
		return
	}
	w.obs.workerBatch(&w.batch, w.stage.Role == stages.RoleSink)
	w.window.publishIntake(&w.pub)
	w.settle(stop)
	if w.chain != nil {
		w.chain.observe()
	}
}

// flushChain has the sink of the fused chain after the stage write what
// the batch gave it. Its dead letters are the last publishes of the batch,
// and every input that gave the sink records waits for them all. If the
// sink gave up on the batch (stop done while held, or max_outage passed),
// the batch goes back to the server as a whole and flushChain reports
// false: a record written already is known for a copy when it comes again
// (its outputs are marked Sluice-Redelivered).
func (w *worker) flushChain(stop, ctx context.Context) bool {
	if !w.chain.flush(stop, ctx, &w.pub) {
		w.batch.giveBackAll(stop, w.count)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settlePoll)
		w.pub.wait(wctx)
		cancel()
		w.batch.forget()
		return false
	}
	w.chain.written()
	for i := range w.batch.in {
		if f := &w.batch.in[i]; f.fused > 0 && w.chain.gaveSink(f.fused-1) {
			f.n = w.pub.len() - f.first
		}
	}
	return true
}

// prepare readies input f of the batch for the step: it returns its
// message and the watermark a Windowed transform is to advance to (noMark
// if none), or ok false if the input is not to be processed (already
// decided on, or no message).
func (w *worker) prepare(ctx context.Context, f *inFlight, now time.Time) (m *stages.Message, advance int64, ok bool) {
	b := &w.batch
	if f.assign || w.window.reloads(f.part) {
		// A partition taken (again): its state from its checkpoint.
		w.window.load(ctx, f.part, now)
		if f.assign {
			b.skip(f)
			return nil, noMark, false
		}
	}
	if b.blocked(f.part) {
		// An earlier input of its partition goes back to the server: so
		// does this one, to keep their order.
		b.giveBack(f)
		return nil, noMark, false
	}
	meta, err := f.msg.Metadata()
	if err != nil {
		w.log.Error("message without JetStream metadata", "err", err)
		b.skip(f)
		return nil, noMark, false
	}
	m = stages.NewMessage(f.msg.Data())
	m.Header = f.msg.Headers()
	m.Meta = stages.Meta{
		Subject:    f.msg.Subject(),
		Stream:     meta.Stream,
		Sequence:   meta.Sequence.Stream,
		Deliveries: meta.NumDelivered,
		Published:  meta.Timestamp,
		Partition:  max(f.part, 0),
	}
	f.lin = w.lineage(m)
	f.stream, f.seq, f.again = meta.Stream, meta.Sequence.Stream, meta.NumDelivered > 1
	control := m.Header.Get(stages.HeaderControl)
	f.control = control != ""
	advance = w.window.observe(f.part, m, control == controlEnd, now)
	return m, advance, true
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
		lin = lineageOfID(ids[0])
	}
	if lin == "" {
		lin = m.Meta.Stream + ":" + strconv.FormatUint(m.Meta.Sequence, 10)
	}
	if fanIn := w.idFanIn[m.Meta.Stream]; fanIn != "" {
		lin += fanIn
	}
	return lin
}

// lineageOfID returns what the IDs of the outputs of a message of ID id
// derive from: id without its "p/u/", empty if it has none.
func lineageOfID(id string) string {
	for range 2 {
		i := strings.IndexByte(id, '/')
		if i < 0 {
			return ""
		}
		id = id[i+1:]
	}
	return id
}

// settle waits for the batch's publishes and answers every input: ack or
// term once all its publishes are acknowledged. While the server refuses
// publishes (a full downstream buffer) it keeps retrying, and the feed
// keeps the inputs in progress; after stop, it naks what could not be
// published. For a Windowed transform the state is checkpointed before
// any input is acknowledged; if it cannot be, the batch goes back.
func (w *worker) settle(stop context.Context) {
	// The counts go with the batch's publishes (see counter).
	w.count.count(&w.batch)
	countsAt := -1
	if m := w.count.message(&w.batch); m != nil {
		countsAt = w.pub.add(m)
	}
	for {
		wctx, cancel := context.WithTimeout(context.Background(), settlePoll)
		left := w.pub.wait(wctx)
		cancel()
		if left == 0 || stop.Err() != nil {
			break
		}
	}
	if err := w.window.checkpoint(stop, &w.pub); err != nil {
		w.batch.giveBackAll(stop, w.count)
	} else {
		w.batch.answer(stop, &w.pub, countsAt, w.count, w.log)
	}
	w.batch.forget()
}

// settlePoll is how often a worker waiting on its publishes checks whether
// it is told to stop: once it is, it waits one more round at most, then
// naks what is not published.
const settlePoll = 250 * time.Millisecond
