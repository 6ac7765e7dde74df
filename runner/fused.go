package runner

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// chain runs the stages fused after a source (see pipeline.Pipeline.Chains)
// in the source's loop: each record read goes through the chain's
// transforms, in memory, and what comes out is written with the chain's
// sink, or published to the stream of its last transform, before the
// source's checkpoint moves past the record. The outputs get the IDs they
// would get with a stream between every two stages (p/<stage>/<lineage>.<i>),
// so a record read again after a crash is known for what it is wherever it
// lands.
//
// The fused stages keep their streams and workers: a dead letter replayed
// to one of them, or what an earlier run without fusion left in a stream,
// is processed there.
type chain struct {
	run     *run
	steps   []*fusedStep
	sink    *fusedSink      // nil when the chain ends with a transform
	subject string          // without a sink: where the outputs are published
	routes  map[string]bool // without a sink: the routes the last transform may send on, "" its default output
	cur     []*stages.Message
	next    []*stages.Message
	idBuf   []byte
	ids     idWindow // the IDs of records the source identified, as a stream's dedup window keeps them

	// Headed by a transform, for the inputs of its worker's batch: what
	// each gave the chain's stages (width() counts each, the sink's last,
	// known once written), the range of the sink's batch it gave, and the
	// counts of the steps before it, a scratch.
	inputs []schema.StageCounts
	sinkOf [][2]int
	before []schema.StageCounts
}

// idWindow remembers IDs for a while, as a stream's duplicate window
// does: a record the source identifies (its own Nats-Msg-Id) and sends
// again within the window is taken once.
type idWindow struct {
	window time.Duration
	seen   map[string]time.Time
	order  []idSeen // in the order seen, for expiry
}

type idSeen struct {
	id string
	at time.Time
}

// add reports whether id is new within the window, remembering it.
func (w *idWindow) add(id string, now time.Time) bool {
	n := 0
	for _, e := range w.order {
		if now.Sub(e.at) < w.window {
			break
		}
		if w.seen[e.id] == e.at {
			delete(w.seen, e.id)
		}
		n++
	}
	w.order = w.order[n:]
	if _, ok := w.seen[id]; ok {
		return false
	}
	if w.seen == nil {
		w.seen = make(map[string]time.Time)
	}
	w.seen[id] = now
	w.order = append(w.order, idSeen{id, now})
	return true
}

// fusedStep is a transform of a chain, with its own instance of the
// transform and its counts.
type fusedStep struct {
	stage     *pipeline.Stage
	t         stages.Transform
	idBase    string // "p/<stage>/"
	inSubject string // the subject the stage reads without fusion
	stats     *stageStats
	trace     *stageTrace
	obs       *stageObs
	w         *worker // its log
	done      schema.StageCounts
	batch     schema.StageCounts // of the batch in hand, not yet stored
	outs      []*stages.Message
}

// fusedSink is the sink that ends a chain: the sink stage's own instance,
// which its workers share.
type fusedSink struct {
	stage     *pipeline.Stage
	step      sinkStep
	w         *worker // its holds on a destination that is down
	inSubject string
	idBase    string
	msgs      []*stages.Message
	done      schema.StageCounts
	tally     []schema.StageCounts // after each message of the batch, once written
}

// newChain returns the chain of the stages of fused after its first, a
// source or a transform (for its worker idx), whose units, by name, are in
// units: the sink's unit gives its sink, and each fused transform gets an
// instance of its own, closed with its unit.
func newChain(r *run, fused []*pipeline.Stage, units map[string]*unit, idx int) (*chain, error) {
	c := &chain{run: r, ids: idWindow{window: r.p.Settings.DedupWindow}}
	up := fused[0]
	for _, st := range fused[1:] {
		u := units[st.Name]
		if u == nil {
			return nil, fmt.Errorf("stage %q runs fused but was not built", st.Name)
		}
		w := &worker{run: r, stage: st, stats: r.stats[st.Name], log: r.log.With("stage", st.Name, "fused", true), idBase: r.p.Name + "/" + st.Name + "/"}
		in := schema.Subject(r.p.Name, up.Name)
		if st.Role == stages.RoleSink {
			obs := newStageObs(r, st.Name, st.Role, nil)
			c.sink = &fusedSink{stage: st, step: sinkStep{sink: u.sink, obs: obs}, w: w, inSubject: in, idBase: w.idBase}
			w.trace, w.obs = newStageTrace(r, st), obs
			c.sink.done.Stage = st.Name
			break
		}
		info := r.info(st)
		info.Worker = st.Replicas + idx // after the indexes of its workers
		t, err := st.Spec.NewTransform(st.Params, info)
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", st.Name, err)
		}
		u.transforms = append(u.transforms, t)
		c.steps = append(c.steps, &fusedStep{
			stage: st, t: t, idBase: w.idBase, inSubject: in, stats: w.stats,
			trace: newStageTrace(r, st), obs: newStageObs(r, st.Name, st.Role, nil), w: w,
			done: schema.StageCounts{Stage: st.Name},
		})
		up = st
	}
	if c.sink == nil {
		c.subject, c.routes = schema.Subject(r.p.Name, up.Name), outputRoutes(up)
	}
	return c, nil
}

// fusedUnits wires the chains of the job's pipeline into the units that
// head them in this process: a source's loop, or each worker of a
// transform. Of a chain, a process fuses the stages it runs: each run of
// consecutive stages of the chain that it runs is a chain of its own,
// headed by its first stage (a stream comes before it: the process that
// runs the stage before publishes there). In a run deployed to a cluster
// a source heads no chain: the stages after it then share its stream's
// records among every worker of the cluster, instead of running in the
// one process that runs the source.
func (j *Job) fusedUnits() error {
	units := make(map[string]*unit, len(j.units))
	for _, u := range j.units {
		units[u.stage.Name] = u
	}
	for _, chain := range j.r.p.Chains() {
		for _, fused := range localRuns(chain, units, j.r.opts.Run != 0) {
			if err := j.fuse(fused, units); err != nil {
				return err
			}
		}
	}
	return nil
}

// localRuns returns the runs of consecutive stages of chain that have
// units here, each of two stages or more and headed by a source or a
// transform (a source only if sources may head).
func localRuns(chain []*pipeline.Stage, units map[string]*unit, noSource bool) [][]*pipeline.Stage {
	var runs [][]*pipeline.Stage
	var cur []*pipeline.Stage
	end := func() {
		if len(cur) > 1 {
			runs = append(runs, cur)
		}
		cur = nil
	}
	for _, s := range chain {
		switch {
		case units[s.Name] == nil:
			end()
		case len(cur) == 0 && (s.Role == stages.RoleSink || s.Role == stages.RoleSource && noSource):
			// Cannot head: the next stage may.
		default:
			cur = append(cur, s)
		}
	}
	end()
	return runs
}

// fuse wires chain fused into the unit that heads it.
func (j *Job) fuse(fused []*pipeline.Stage, units map[string]*unit) error {
	head := units[fused[0].Name]
	if head.source != nil {
		c, err := newChain(j.r, fused, units, 0)
		if err != nil {
			return err
		}
		head.source.chain = c
	}
	for i, w := range head.workers {
		c, err := newChain(j.r, fused, units, i)
		if err != nil {
			return err
		}
		w.chain, w.count.chain = c, c
		w.count.c.Fused = c.names()
	}
	names := make([]string, len(fused))
	for i, s := range fused {
		names[i] = s.Name
	}
	j.r.log.Debug("stages run fused", "chain", strings.Join(names, " → "))
	return nil
}

// chainOf returns the chain that unit u heads, or nil.
func (u *unit) chainOf() *chain {
	switch {
	case u.source != nil:
		return u.source.chain
	case len(u.workers) > 0:
		return u.workers[0].chain
	}
	return nil
}

// FusedBefore reports whether stage name runs fused with the stage after
// it in this job: its outputs go there in memory, not through its stream,
// so its stream stays empty but for what replays and earlier runs put
// there.
func (j *Job) FusedBefore(name string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, u := range j.units {
		c := u.chainOf()
		if c == nil {
			continue
		}
		if u.stage.Name == name {
			return true
		}
		for i, st := range c.steps {
			if st.stage.Name == name {
				return i < len(c.steps)-1 || c.sink != nil
			}
		}
	}
	return false
}

// names returns the chain's stages after its head, each with no counts.
func (c *chain) names() []schema.StageCounts {
	out := make([]schema.StageCounts, 0, c.width())
	for _, st := range c.steps {
		out = append(out, schema.StageCounts{Stage: st.stage.Name})
	}
	if c.sink != nil {
		out = append(out, schema.StageCounts{Stage: c.sink.stage.Name})
	}
	return out
}

// width returns the number of the chain's stages after its head.
func (c *chain) width() int {
	if c.sink != nil {
		return len(c.steps) + 1
	}
	return len(c.steps)
}

// begin readies the chain for a batch of the source.
func (c *chain) begin() {
	for _, st := range c.steps {
		st.batch = schema.StageCounts{}
		st.obs.begin()
	}
	if s := c.sink; s != nil {
		clear(s.msgs)
		s.msgs = s.msgs[:0]
		s.tally = s.tally[:0]
		s.w.obs.begin()
	}
	c.inputs, c.sinkOf = c.inputs[:0], c.sinkOf[:0]
}

// takeInput runs the outputs of an input of the transform that heads the
// chain through it (see take), and returns the input's index in the
// chain's batch, under which count finds what it gave each stage.
func (c *chain) takeInput(ctx context.Context, outs []*stages.Message, pub *publishBatch) (int, error) {
	c.before = c.before[:0]
	for _, st := range c.steps {
		c.before = append(c.before, st.batch)
	}
	from := c.sinkPos()
	for _, o := range outs {
		if err := c.take(ctx, o, pub); err != nil {
			return 0, err
		}
	}
	for k, st := range c.steps {
		c.inputs = append(c.inputs, subCounts(st.batch, c.before[k]))
	}
	if c.sink != nil {
		c.inputs = append(c.inputs, schema.StageCounts{}) // once written
	}
	c.sinkOf = append(c.sinkOf, [2]int{from, c.sinkPos()})
	return len(c.sinkOf) - 1, nil
}

// gaveSink reports whether input k of the batch gave the sink records,
// whose dead letters, if any, are among the last publishes of the batch.
func (c *chain) gaveSink(k int) bool {
	r := c.sinkOf[k]
	return r[1] > r[0]
}

// written fills in, once the sink wrote its batch, the sink's counts of
// each input of the batch.
func (c *chain) written() {
	s := c.sink
	if s == nil {
		return
	}
	n := c.width()
	for k, r := range c.sinkOf {
		if r[1] == r[0] {
			continue
		}
		var before schema.StageCounts
		if r[0] > 0 {
			before = s.tally[r[0]-1]
		}
		c.inputs[k*n+n-1] = subCounts(s.tally[r[1]-1], before)
	}
}

// count adds what input k of the batch gave the chain's stages to their
// counts in into (laid out as names) and in this process, or takes it
// away.
func (c *chain) count(k int, away bool, into []schema.StageCounts) {
	n := c.width()
	for i, t := range c.inputs[k*n : k*n+n] {
		if away {
			t = negCounts(t)
		}
		into[i] = addCounts(into[i], t)
		if i < len(c.steps) {
			c.steps[i].stats.add(t)
		} else {
			c.sink.w.stats.add(t)
		}
	}
}

// take runs record m (with its ID and marks) through the chain: its
// outputs go to the sink's batch, or to pub; so do the dead letters of
// the records a stage of the chain failed on.
func (c *chain) take(ctx context.Context, m *stages.Message, pub *publishBatch) error {
	c.cur = append(c.cur[:0], m)
	for _, st := range c.steps {
		c.next = c.next[:0]
		for _, x := range c.cur {
			outs, err := st.process(ctx, c, x, pub)
			if err != nil {
				return err
			}
			c.next = append(c.next, outs...)
		}
		c.cur, c.next = c.next, c.cur
	}
	if c.sink != nil {
		c.sink.msgs = append(c.sink.msgs, c.cur...)
		return nil
	}
	for _, o := range c.cur {
		data, err := o.Payload()
		if err == nil {
			err = c.run.checkSize(data)
		}
		if err == nil && !c.routes[o.Route] {
			err = fmt.Errorf("output on route %q, which the stage's type does not declare", o.Route)
		}
		if err != nil {
			// Cannot be published: the last stage failed on its input.
			return fmt.Errorf("stage %q: output: %w", c.steps[len(c.steps)-1].stage.Name, err)
		}
		subject := c.subject
		if o.Route != "" {
			subject += "." + o.Route
		}
		pub.addOutput(&nats.Msg{Subject: subject, Data: data, Header: o.Header})
	}
	return nil
}

// process runs the step's transform on x, retrying a failure in place as
// the stage's policy allows, and returns x's outputs with their IDs. A
// record it fails on is dead-lettered (in pub) or dropped; a failure
// because ctx ended is returned: the batch is given up.
func (st *fusedStep) process(ctx context.Context, c *chain, x *stages.Message, pub *publishBatch) ([]*stages.Message, error) {
	span := st.trace.begin(x)
	outs, err := st.safeProcess(ctx, x)
	attempts := 0
	for err != nil && retryable(st.stage, err, attempts) && ctx.Err() == nil {
		attempts++
		st.batch.In++ // a failed attempt counts as an input that failed
		st.batch.Errors++
		st.w.log.Warn("processing failed, will retry in place", "err", err, "attempts", attempts)
		if !retry.Sleep(ctx, st.stage.RetryDelay(attempts)) {
			break
		}
		outs, err = st.safeProcess(ctx, x)
	}
	st.trace.end(span, outs, err)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("stage %q: %w", st.stage.Name, context.Cause(ctx))
	}
	st.batch.In++
	lin := lineageOfID(x.Header.Get(stages.HeaderMsgID))
	if err != nil {
		st.failed(ctx, c, x, lin, err, attempts+1, pub)
		return nil, nil
	}
	if len(outs) == 0 {
		st.batch.Filtered++
		return nil, nil
	}
	st.batch.Out += uint64(len(outs))
	again := x.MaybeCopy()
	for i, o := range outs {
		if o.Header == nil {
			o.Header = make(nats.Header, 2)
		}
		if o != x {
			inheritHeaders(o, x)
		}
		o.Header[stages.HeaderMsgID] = []string{outputID(&c.idBuf, st.idBase, lin, i)}
		if again {
			o.Header[stages.HeaderRedelivered] = redelivered
		}
	}
	return outs, nil
}

// safeProcess runs the transform on x, turning a panic into an error.
func (st *fusedStep) safeProcess(ctx context.Context, x *stages.Message) (outs []*stages.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, err = nil, fmt.Errorf("stage %q panicked: %v", st.stage.Name, r)
		}
	}()
	outs, err = st.t.Process(ctx, x, st.outs[:0])
	if outs != nil {
		st.outs = outs[:0]
	}
	for _, o := range outs {
		if err != nil {
			break
		}
		// As the next stage would get it from a stream; a record a
		// stream would refuse fails its input here, as it would there.
		err = asDecoded(o)
	}
	return outs, err
}

// failed dead-letters or drops x, which the step failed on with err after
// attempts attempts.
func (st *fusedStep) failed(ctx context.Context, c *chain, x *stages.Message, lin string, err error, attempts int, pub *publishBatch) {
	if st.stage.OnError == pipeline.OnErrorDrop {
		st.w.log.Warn("processing failed, record dropped", "err", err)
		st.batch.Dropped++
		return
	}
	st.batch.Dead++
	c.deadLetter(ctx, st.stage.Name, st.idBase+lin+"/dlq", st.inSubject, x, err, attempts, pub)
}

// deadLetter puts the dead letter of x, which stage failed on, in pub.
func (c *chain) deadLetter(ctx context.Context, stage, id, subject string, x *stages.Message, err error, attempts int, pub *publishBatch) {
	data, perr := x.Payload()
	if perr != nil {
		err = fmt.Errorf("%w (and the record cannot be encoded: %w)", err, perr)
	}
	dl := deadLetter(c.run.p.Name, stage, c.run.id, id, subject, data, x.Header, err, uint64(attempts), c.run.nc.MaxPayload())
	c.run.keepWhole(ctx, dl, data)
	pub.add(dl)
}

// retryable reports whether a failure of stage st with err, after
// attempts retries in place, is to be tried again in place: on_error
// retry, an error not marked permanent, and attempts left.
func retryable(st *pipeline.Stage, err error, attempts int) bool {
	return st.OnError == pipeline.OnErrorRetry && !stages.IsPermanent(err) && !stages.IsOutage(err) && attempts+1 < st.MaxDeliver
}

// flush writes the sink's batch, holding on a destination that is down
// and retrying failures in place as the sink's policy allows; the records
// it still fails on are dead-lettered (in pub) or dropped. It reports
// false if it gave up on the batch: stop done while held, or max_outage
// passed (which fails the run); then nothing of the batch counts as
// written, and a resumed run reads it again.
func (c *chain) flush(stop, ctx context.Context, pub *publishBatch) bool {
	s := c.sink
	if s == nil || len(s.msgs) == 0 {
		return true
	}
	w := s.w
	w.trace.beginWrites(s.msgs)
	s.step.msgs = s.msgs
	s.step.errs = s.step.writeErrs(ctx, s.stage.Name, s.msgs, s.step.errs[:0])
	errs := s.step.errs
	tries := make([]int, len(s.msgs))
	for attempts := 0; ; attempts++ {
		// What failed because the destination is down is written again
		// until it is back (see sinkStep.hold).
		s.step.hold(stop, ctx, w)
		if w.run.failure() != nil || slices.ContainsFunc(errs, stages.IsOutage) {
			w.trace.endWrites(errs)
			return false
		}
		s.step.retry, s.step.retryIdx = s.step.retry[:0], s.step.retryIdx[:0]
		for j, e := range errs {
			if e != nil && retryable(s.stage, e, tries[j]) {
				s.step.retry = append(s.step.retry, s.msgs[j])
				s.step.retryIdx = append(s.step.retryIdx, j)
			}
		}
		if len(s.step.retry) == 0 || stop.Err() != nil {
			break
		}
		w.log.Warn("writes failed, will write again in place", "err", errs[s.step.retryIdx[0]], "records", len(s.step.retry))
		if !retry.Sleep(stop, s.stage.RetryDelay(attempts+1)) {
			break
		}
		s.step.again = s.step.writeErrs(ctx, s.stage.Name, s.step.retry, s.step.again[:0])
		for i, j := range s.step.retryIdx {
			errs[j], tries[j] = s.step.again[i], tries[j]+1
		}
	}
	w.trace.endWrites(errs)
	if ctx.Err() != nil && slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
		return false // stopped: not the records' fault
	}
	var t schema.StageCounts
	for j, m := range s.msgs {
		t.In++
		switch e := errs[j]; {
		case e == nil:
			t.Out++
		case s.stage.OnError == pipeline.OnErrorDrop:
			w.log.Warn("write failed, record dropped", "err", e)
			t.Dropped++
		default:
			t.Dead++
			c.deadLetter(ctx, s.stage.Name, s.idBase+lineageOfID(m.Header.Get(stages.HeaderMsgID))+"/dlq", s.inSubject, m, e, tries[j]+1, pub)
		}
		t.In += uint64(tries[j]) // each failed attempt counts as an input that failed
		t.Errors += uint64(tries[j])
		s.tally = append(s.tally, t)
	}
	return true
}

// sinkPos returns how many records the sink's batch holds: what a
// checkpoint taken now covers of it. A nil chain has none.
func (c *chain) sinkPos() int {
	if c == nil || c.sink == nil {
		return 0
	}
	return len(c.sink.msgs)
}

// counts returns the counts of the chain's stages for a checkpoint taken
// when the sink's batch held pos records: those stored before the batch,
// the batch's so far, and the sink's for its first pos records (known
// once flush has written them).
func (c *chain) counts(pos int) []schema.StageCounts {
	out := make([]schema.StageCounts, 0, len(c.steps)+1)
	for _, st := range c.steps {
		out = append(out, addCounts(st.done, st.batch))
	}
	if s := c.sink; s != nil {
		var t schema.StageCounts
		if pos > 0 && pos <= len(s.tally) {
			t = s.tally[pos-1]
		}
		out = append(out, addCounts(s.done, t))
	}
	return out
}

// commitUpTo adds the counts of a checkpoint taken when the sink's batch
// held pos records (see counts) to those stored and to the stages' counts
// in this process, once what the checkpoint covers is written and
// published. It is for a chain headed by a source, whose checkpoint has
// the counts.
func (c *chain) commitUpTo(pos int) {
	counts := c.counts(pos)
	for i, st := range c.steps {
		st.stats.add(subCounts(counts[i], st.done))
		st.done = counts[i]
	}
	if s := c.sink; s != nil {
		t := counts[len(c.steps)]
		s.w.stats.add(subCounts(t, s.done))
		s.done = t
	}
}

// observe reports the batch of each stage of the chain to the Observer.
func (c *chain) observe() {
	for _, st := range c.steps {
		st.obs.fusedBatch(int(st.batch.In), int(st.batch.Errors), nil, nil)
		st.batch = schema.StageCounts{}
	}
	if s := c.sink; s != nil && len(s.tally) > 0 {
		s.w.obs.fusedBatch(len(s.msgs), int(s.tally[len(s.tally)-1].Errors), s.msgs, s.step.errs)
	}
}

// restore takes the counts of a resumed run's checkpoint as what the
// chain's stages counted before.
func (c *chain) restore(counts []schema.StageCounts) {
	for _, sc := range counts {
		for _, st := range c.steps {
			if st.stage.Name == sc.Stage {
				st.done = sc
				st.stats.add(sc)
			}
		}
		if s := c.sink; s != nil && s.stage.Name == sc.Stage {
			s.done = sc
			s.w.stats.add(sc)
		}
	}
}

// addCounts returns a + b, named as a.
func addCounts(a, b schema.StageCounts) schema.StageCounts {
	a.In += b.In
	a.Out += b.Out
	a.Filtered += b.Filtered
	a.Errors += b.Errors
	a.Dead += b.Dead
	a.Dropped += b.Dropped
	return a
}

// subCounts returns a - b, named as a.
func subCounts(a, b schema.StageCounts) schema.StageCounts {
	return addCounts(a, negCounts(b))
}

// negCounts returns -c: adding it subtracts c (the sums wrap).
func negCounts(c schema.StageCounts) schema.StageCounts {
	return schema.StageCounts{Stage: c.Stage, In: -c.In, Out: -c.Out, Filtered: -c.Filtered, Errors: -c.Errors, Dead: -c.Dead, Dropped: -c.Dropped}
}

// add adds the counts of c to the stage's counts in this process.
func (s *stageStats) add(c schema.StageCounts) {
	s.in.Add(c.In)
	s.out.Add(c.Out)
	s.filtered.Add(c.Filtered)
	s.errors.Add(c.Errors)
	s.dead.Add(c.Dead)
	s.dropped.Add(c.Dropped)
}

// fusedBatch reports a fused stage's part of a source's batch: records
// inputs, retries of them in place; for a sink, written are its inputs,
// errs its final error for each, whose read times give the latencies.
func (o *stageObs) fusedBatch(records, retries int, written []*stages.Message, errs []error) {
	if o == nil {
		return
	}
	f := BatchFigures{Records: records, Retries: retries, Duration: time.Since(o.start)}
	now := time.Now()
	o.latencies = o.latencies[:0]
	for i, m := range written {
		if errs[i] != nil {
			continue
		}
		if v := m.Header[stages.HeaderReadTime]; len(v) == 1 && o.readTimeOf(v[0]) {
			o.latencies = append(o.latencies, now.Sub(o.lastRead))
		}
	}
	f.Latencies = o.latencies
	o.obs.Batch(f)
}

// asDecoded makes the value of m, set in memory by the stage before it in
// a chain (or by a source), what the next stage would get from a stream:
// JSON's types, as stages.DecodeJSON gives them (int64 for an integer that
// fits, float64, string, bool, nil, []any, map[string]any). Most records
// need no more than a walk that turns Go's other numbers into those, in
// place; one that holds anything else (a struct, a time, a typed slice) is
// encoded and decoded, and fails as a stream would refuse it (not a JSON
// value, such as NaN). A message given as bytes, or decoded from them and
// not changed since, is left alone.
func asDecoded(m *stages.Message) error {
	if !m.NeedsEncoding() {
		return nil
	}
	v, err := m.Value()
	if err != nil {
		return err
	}
	if nv, changed, ok := jsonTypes(v); ok {
		if changed {
			m.SetValue(nv)
		}
		return nil
	}
	data, err := m.Payload()
	if err != nil {
		return err
	}
	dv, err := stages.DecodeJSON(data)
	if err != nil {
		return stages.Permanent(err)
	}
	m.SetPayloadValue(data, dv)
	return nil
}

// jsonTypes returns v with its numbers as JSON decoding gives them,
// changing maps and slices in place where they hold other numbers, and
// whether it changed v itself; or false if v holds a value that only
// encoding can tell (then v may be half changed, which encoding does not
// mind).
func jsonTypes(v any) (nv any, changed, ok bool) {
	switch x := v.(type) {
	case nil, string, bool, int64:
		return v, false, true
	case float64:
		return v, false, !math.IsNaN(x) && !math.IsInf(x, 0)
	case int:
		return int64(x), true, true
	case int32:
		return int64(x), true, true
	case int16:
		return int64(x), true, true
	case int8:
		return int64(x), true, true
	case uint8:
		return int64(x), true, true
	case uint16:
		return int64(x), true, true
	case uint32:
		return int64(x), true, true
	case map[string]any:
		for k, e := range x {
			ne, changed, ok := jsonTypes(e)
			if !ok {
				return nil, false, false
			}
			if changed {
				x[k] = ne
			}
		}
		return x, false, true
	case []any:
		for i, e := range x {
			ne, changed, ok := jsonTypes(e)
			if !ok {
				return nil, false, false
			}
			if changed {
				x[i] = ne
			}
		}
		return x, false, true
	}
	return nil, false, false
}
