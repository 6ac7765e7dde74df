package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// These tests run the worker loop's logic without a server, on testMsg
// inputs. What publishes (outputs, dead letters) is covered by the tests
// on a real server; here the publishes are either none or set by
// publishedAs.

// testMsg is one input message for tests of the worker loop without a
// server: it records how it was answered.
type testMsg struct {
	meta    jetstream.MsgMetadata
	subject string
	data    []byte
	hdr     nats.Header

	mu         sync.Mutex
	acks       int
	naks       int
	nakDelays  []time.Duration
	terms      int
	inProgress int
}

// newTestMsg returns input seq of stream, delivered deliveries times, with
// the Nats-Msg-Id an upstream stage u of pipeline p gives it.
func newTestMsg(stream string, seq, deliveries uint64, data string) *testMsg {
	return &testMsg{
		meta: jetstream.MsgMetadata{
			Sequence:     jetstream.SequencePair{Stream: seq, Consumer: seq},
			NumDelivered: deliveries,
			Stream:       stream,
		},
		subject: "sluice.p.u",
		data:    []byte(data),
		hdr:     nats.Header{stages.HeaderMsgID: []string{"p/u/src/" + strconv.FormatUint(seq, 10)}},
	}
}

func (m *testMsg) Metadata() (*jetstream.MsgMetadata, error) { return &m.meta, nil }
func (m *testMsg) Data() []byte                              { return m.data }
func (m *testMsg) Headers() nats.Header                      { return m.hdr }
func (m *testMsg) Subject() string                           { return m.subject }
func (m *testMsg) Reply() string                             { return "" }
func (m *testMsg) Ack() error                                { m.mu.Lock(); m.acks++; m.mu.Unlock(); return nil }
func (m *testMsg) DoubleAck(context.Context) error           { return m.Ack() }
func (m *testMsg) Nak() error                                { m.mu.Lock(); m.naks++; m.mu.Unlock(); return nil }
func (m *testMsg) NakWithDelay(d time.Duration) error {
	m.mu.Lock()
	m.naks++
	m.nakDelays = append(m.nakDelays, d)
	m.mu.Unlock()
	return nil
}
func (m *testMsg) InProgress() error           { m.mu.Lock(); m.inProgress++; m.mu.Unlock(); return nil }
func (m *testMsg) Term() error                 { m.mu.Lock(); m.terms++; m.mu.Unlock(); return nil }
func (m *testMsg) TermWithReason(string) error { return m.Term() }

// testWorker returns a worker of stage st for tests without a server:
// its step is s, its inputs are partitioned if ordered, and it has no
// watermarks. It must publish nothing.
func testWorker(st *pipeline.Stage, s step, ordered bool) *worker {
	stats := &stageStats{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &run{p: &pipeline.Pipeline{Name: "p"}, log: log}
	count := newCounter(r, st.Name, stats)
	return &worker{
		run:     r,
		stage:   st,
		stats:   stats,
		count:   count,
		log:     log,
		idBase:  "p/" + st.Name + "/",
		idFanIn: map[string]string{},
		batch:   newBatch(ordered),
		policy:  policy{stage: st, ordered: ordered, count: count, log: log},
		step:    s,
	}
}

var (
	errTransient = errors.New("destination unavailable")
	errBad       = stages.Permanent(errors.New("bad record"))
	testBackoff  = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
)

// testStage returns a transform stage failing as onError says.
func testStage(onError string, maxDeliver int, backoff ...time.Duration) *pipeline.Stage {
	return &pipeline.Stage{Name: "s", Role: stages.RoleTransform, Type: "t", OnError: onError, MaxDeliver: maxDeliver, Backoff: backoff}
}

func TestPolicyOnFailure(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name       string
		onError    string
		ordered    bool
		ctx        context.Context
		deliveries uint64
		attempts   int
		err        error
		want       failure
	}{
		{"transient error retries later", pipeline.OnErrorRetry, false, nil, 1, 0, errTransient, failRetryLater},
		{"transient error before the last delivery", pipeline.OnErrorRetry, false, nil, 4, 0, errTransient, failRetryLater},
		{"last delivery dead-letters", pipeline.OnErrorRetry, false, nil, 5, 0, errTransient, failDeadLetter},
		{"permanent error dead-letters at once", pipeline.OnErrorRetry, false, nil, 1, 0, errBad, failDeadLetter},
		{"on_error dead_letter dead-letters at once", pipeline.OnErrorDeadLetter, false, nil, 1, 0, errTransient, failDeadLetter},
		{"on_error drop drops", pipeline.OnErrorDrop, false, nil, 1, 0, errTransient, failDrop},
		{"on_error drop drops a permanent error", pipeline.OnErrorDrop, false, nil, 1, 0, errBad, failDrop},
		{"ordered: retried in place until told to stop, given back", pipeline.OnErrorRetry, true, nil, 1, 2, errTransient, failGiveBack},
		{"ordered: retries in place count as attempts", pipeline.OnErrorRetry, true, nil, 2, 3, errTransient, failDeadLetter},
		{"ordered: permanent error dead-letters", pipeline.OnErrorRetry, true, nil, 1, 0, errBad, failDeadLetter},
		{"stage gave up as told: given back", pipeline.OnErrorDrop, false, cancelled, 5, 0, fmt.Errorf("write: %w", context.Canceled), failGiveBack},
		{"stopping, but the error is the record's", pipeline.OnErrorRetry, false, cancelled, 5, 0, errTransient, failDeadLetter},
		{"outage held until told to stop: given back, not an attempt", pipeline.OnErrorRetry, false, nil, 5, 0, stages.Outage(errTransient), failGiveBack},
		{"outage under on_error drop: given back, not dropped", pipeline.OnErrorDrop, false, nil, 1, 0, stages.Outage(errTransient), failGiveBack},
		{"outage under on_error dead_letter: given back", pipeline.OnErrorDeadLetter, true, nil, 1, 0, stages.Outage(errTransient), failGiveBack},
		{"a record the destination rejects is no outage", pipeline.OnErrorRetry, false, nil, 1, 0, stages.Outage(errBad), failDeadLetter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &policy{stage: testStage(tc.onError, 5), ordered: tc.ordered}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			m := &stages.Message{Meta: stages.Meta{Deliveries: tc.deliveries}}
			if got := p.onFailure(ctx, m, tc.err, tc.attempts); got != tc.want {
				t.Errorf("onFailure = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPolicyCanRetryInPlace(t *testing.T) {
	for _, tc := range []struct {
		name       string
		onError    string
		ordered    bool
		deliveries uint64
		attempts   int
		err        error
		want       bool
	}{
		{"ordered transient error", pipeline.OnErrorRetry, true, 1, 0, errTransient, true},
		{"ordered, one attempt left", pipeline.OnErrorRetry, true, 1, 3, errTransient, true},
		{"ordered, attempts used up", pipeline.OnErrorRetry, true, 1, 4, errTransient, false},
		{"ordered permanent error", pipeline.OnErrorRetry, true, 1, 0, errBad, false},
		{"ordered, on_error drop", pipeline.OnErrorDrop, true, 1, 0, errTransient, false},
		{"not ordered", pipeline.OnErrorRetry, false, 1, 0, errTransient, false},
		{"ordered outage: held instead", pipeline.OnErrorRetry, true, 1, 0, stages.Outage(errTransient), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &policy{stage: testStage(tc.onError, 5), ordered: tc.ordered}
			m := &stages.Message{Meta: stages.Meta{Deliveries: tc.deliveries}}
			if got := p.canRetryInPlace(m, tc.err, tc.attempts); got != tc.want {
				t.Errorf("canRetryInPlace = %v, want %v", got, tc.want)
			}
		})
	}
}

// publishedAs puts publishes in pub as if they were sent and settled:
// stored if ok, else failed.
func publishedAs(pub *publishBatch, ok ...bool) {
	for _, stored := range ok {
		pub.msgs = append(pub.msgs, &nats.Msg{})
		pub.futs = append(pub.futs, nil)
		if stored {
			pub.state, pub.errs = append(pub.state, pubDone), append(pub.errs, nil)
		} else {
			pub.state, pub.errs = append(pub.state, pubRetry), append(pub.errs, errNoAck)
		}
	}
}

// answered is how an input was answered and counted.
type answered struct {
	acks, naks, terms                     int
	out, filtered, dead, dropped, errored uint64
}

func answersOf(m *testMsg, s *stageStats) answered {
	m.mu.Lock()
	defer m.mu.Unlock()
	return answered{acks: m.acks, naks: m.naks, terms: m.terms,
		out: s.out.Load(), filtered: s.filtered.Load(), dead: s.dead.Load(), dropped: s.dropped.Load(), errored: s.errors.Load()}
}

func TestBatchAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stored  []bool // the batch's publishes
		control bool
		decide  func(b *batch, f *inFlight)
		want    answered
	}{
		{"outputs stored: acked", []bool{true, true}, false, func(b *batch, f *inFlight) { b.published(f, 0, 2) }, answered{acks: 1, out: 2}},
		{"an output not stored: nak'ed", []bool{true, false}, false, func(b *batch, f *inFlight) { b.published(f, 0, 2) }, answered{naks: 1}},
		{"only its own outputs count", []bool{false, true}, false, func(b *batch, f *inFlight) { b.published(f, 1, 1) }, answered{acks: 1, out: 1}},
		{"no output: filtered", nil, false, func(b *batch, f *inFlight) { b.published(f, 0, 0) }, answered{acks: 1, filtered: 1}},
		{"written by the sink", nil, false, func(b *batch, f *inFlight) { b.written(f) }, answered{acks: 1, out: 1}},
		{"dead letter stored: terminated", []bool{true}, false, func(b *batch, f *inFlight) { b.deadLettered(f, 0) }, answered{terms: 1, dead: 1}},
		{"dead letter not stored: nak'ed", []bool{false}, false, func(b *batch, f *inFlight) { b.deadLettered(f, 0) }, answered{naks: 1}},
		{"dropped: acked and counted", nil, false, func(b *batch, f *inFlight) { b.dropped(f) }, answered{acks: 1, dropped: 1}},
		{"watermark tick: acked, not filtered", nil, true, func(b *batch, f *inFlight) { b.published(f, 0, 0) }, answered{acks: 1}},
		{"window emitted on a tick: out", []bool{true}, true, func(b *batch, f *inFlight) { b.published(f, 0, 1) }, answered{acks: 1, out: 1}},
		{"given back: nak'ed once", nil, false, func(b *batch, f *inFlight) { b.giveBack(f) }, answered{naks: 1}},
		{"skipped: not answered", nil, false, func(b *batch, f *inFlight) { b.skip(f) }, answered{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := testWorker(testStage(pipeline.OnErrorRetry, 5), nil, false)
			publishedAs(&w.pub, tc.stored...)
			m := newTestMsg("in", 1, 1, "{}")
			w.batch.add(delivery{jm: m, part: -1})
			f := &w.batch.in[0]
			f.control = tc.control
			tc.decide(&w.batch, f)
			w.count.count(&w.batch)
			w.batch.answer(context.Background(), &w.pub, -1, w.count, w.log)
			if got := answersOf(m, w.stats); got != tc.want {
				t.Errorf("answered %+v, want %+v", got, tc.want)
			}
			w.batch.forget()
			if len(w.batch.in) != 0 {
				t.Errorf("batch not emptied: %d inputs left", len(w.batch.in))
			}
		})
	}
}

func TestBatchRetryLater(t *testing.T) {
	w := testWorker(testStage(pipeline.OnErrorRetry, 5), nil, false)
	m := newTestMsg("in", 1, 1, "{}")
	w.batch.add(delivery{jm: m, part: -1})
	w.batch.retryLater(&w.batch.in[0], 5*time.Second)
	w.count.count(&w.batch)
	w.batch.answer(context.Background(), &w.pub, -1, w.count, w.log)
	if got := answersOf(m, w.stats); got != (answered{naks: 1, errored: 1}) {
		t.Errorf("answered %+v, want one nak, counted as an error", got)
	}
	if !slices.Equal(m.nakDelays, []time.Duration{5 * time.Second}) {
		t.Errorf("nak delays %v, want [5s]", m.nakDelays)
	}
}

// funcTransform runs process on every input, counting the calls.
type funcTransform struct {
	calls   int
	process func(call int, m *stages.Message) ([]*stages.Message, error)
}

func (t *funcTransform) Process(_ context.Context, m *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	t.calls++
	outs, err := t.process(t.calls, m)
	return append(out, outs...), err
}
func (t *funcTransform) Close(context.Context) error { return nil }

// failing returns a transform that fails with err on its first n calls
// and filters every input after.
func failing(n int, err error) *funcTransform {
	return &funcTransform{process: func(call int, _ *stages.Message) ([]*stages.Message, error) {
		if call <= n {
			return nil, err
		}
		return nil, nil
	}}
}

func TestTransformLoop(t *testing.T) {
	for _, tc := range []struct {
		name       string
		stage      *pipeline.Stage
		transform  *funcTransform
		deliveries uint64
		ordered    bool
		want       answered
		wantCalls  int
		wantDelays []time.Duration
	}{
		{"no output: acked, filtered", testStage(pipeline.OnErrorRetry, 5), failing(0, nil), 1, false,
			answered{acks: 1, filtered: 1}, 1, nil},
		{"transient error: nak with the backoff of its first delivery", testStage(pipeline.OnErrorRetry, 5, testBackoff...), failing(1, errTransient), 1, false,
			answered{naks: 1, errored: 1}, 1, []time.Duration{time.Second}},
		{"transient error: nak with the backoff of its third delivery", testStage(pipeline.OnErrorRetry, 5, testBackoff...), failing(1, errTransient), 3, false,
			answered{naks: 1, errored: 1}, 1, []time.Duration{30 * time.Second}},
		{"on_error drop: acked, dropped", testStage(pipeline.OnErrorDrop, 5), failing(1, errTransient), 1, false,
			answered{acks: 1, dropped: 1}, 1, nil},
		{"a panic is an error", testStage(pipeline.OnErrorDrop, 5),
			&funcTransform{process: func(int, *stages.Message) ([]*stages.Message, error) { panic("boom") }}, 1, false,
			answered{acks: 1, dropped: 1}, 1, nil},
		{"ordered: retried in place until it passes", testStage(pipeline.OnErrorRetry, 5, time.Millisecond), failing(2, errTransient), 1, true,
			answered{acks: 1, filtered: 1, errored: 2}, 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := testWorker(tc.stage, &transformStep{transform: tc.transform, routes: outputRoutes(tc.stage)}, tc.ordered)
			m := newTestMsg("in", 1, tc.deliveries, "{}")
			w.batch.add(delivery{jm: m, part: 0})
			ctx := context.Background()
			w.process(ctx, ctx)
			if got := answersOf(m, w.stats); got != tc.want {
				t.Errorf("answered %+v, want %+v", got, tc.want)
			}
			if tc.transform.calls != tc.wantCalls {
				t.Errorf("transform called %d times, want %d", tc.transform.calls, tc.wantCalls)
			}
			if !slices.Equal(m.nakDelays, tc.wantDelays) {
				t.Errorf("nak delays %v, want %v", m.nakDelays, tc.wantDelays)
			}
			// in counts attempts, each of which ends one way.
			st := w.stats
			if in, ended := st.in.Load(), st.out.Load()+st.filtered.Load()+st.errors.Load()+st.dead.Load()+st.dropped.Load(); in != uint64(tc.wantCalls) || in != ended {
				t.Errorf("in = %d, out+filtered+errors+dead+dropped = %d, want %d", in, ended, tc.wantCalls)
			}
		})
	}
}

// TestTransformLoopGiveBack: on partitioned inputs, an input retried in
// place until the run is told to stop goes back to the server, and the
// inputs after it in its partition go back with it, unprocessed; other
// partitions are processed.
func TestTransformLoopGiveBack(t *testing.T) {
	st := testStage(pipeline.OnErrorRetry, 5, time.Millisecond)
	stop, cancel := context.WithCancel(context.Background())
	tr := &funcTransform{process: func(_ int, m *stages.Message) ([]*stages.Message, error) {
		if m.Meta.Sequence == 1 {
			cancel() // told to stop while the first input fails: no retry in place
			return nil, errTransient
		}
		return nil, nil
	}}
	w := testWorker(st, &transformStep{transform: tr, routes: outputRoutes(st)}, true)
	msgs := []*testMsg{newTestMsg("in", 1, 1, "{}"), newTestMsg("in", 2, 1, "{}"), newTestMsg("in", 3, 1, "{}")}
	parts := []int{0, 0, 1}
	for i, m := range msgs {
		w.batch.add(delivery{jm: m, part: parts[i]})
	}
	w.process(stop, context.Background())

	// The failed input goes back with its partition; told to stop, the
	// worker takes no further input, of any partition: the rest of the
	// batch goes back unprocessed.
	want := []answered{{naks: 1}, {naks: 1}, {naks: 1}}
	for i, m := range msgs {
		got := answersOf(m, &stageStats{})
		if got != want[i] {
			t.Errorf("input %d (partition %d) answered %+v, want %+v", i+1, parts[i], got, want[i])
		}
	}
	if tr.calls != 1 {
		t.Errorf("transform called %d times, want 1 (nothing after the stop)", tr.calls)
	}
	if got := w.stats.in.Load(); got != 0 {
		t.Errorf("in = %d, want 0: inputs given back are counted when they are answered", got)
	}
	if len(w.batch.given) != 0 {
		t.Errorf("partitions given back still blocked after the batch: %v", w.batch.given)
	}
}

// TestTransformLoopStops: a batch whose worker is told to stop midway
// gives back, unprocessed, every input it had not begun.
func TestTransformLoopStops(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		st := testStage(pipeline.OnErrorRetry, 5, time.Millisecond)
		stop, cancel := context.WithCancel(context.Background())
		tr := &funcTransform{process: func(call int, m *stages.Message) ([]*stages.Message, error) {
			if call == 2 {
				cancel() // the stop comes while the second input is in hand
			}
			return nil, nil
		}}
		w := testWorker(st, &transformStep{transform: tr, routes: outputRoutes(st)}, ordered)
		var msgs []*testMsg
		for i := range 5 {
			m := newTestMsg("in", uint64(i+1), 1, "{}")
			msgs = append(msgs, m)
			w.batch.add(delivery{jm: m})
		}
		w.process(stop, context.Background())
		for i, m := range msgs {
			want := answered{naks: 1}
			if i < 2 {
				want = answered{acks: 1} // processed (filtered) before the stop
			}
			if got := answersOf(m, &stageStats{}); got != want {
				t.Errorf("ordered %v: input %d answered %+v, want %+v", ordered, i+1, got, want)
			}
		}
		if tr.calls != 2 {
			t.Errorf("ordered %v: transform called %d times, want 2", ordered, tr.calls)
		}
	}
}

// funcSink writes with write, counting the calls.
type funcSink struct {
	calls int
	write func(call int, batch []*stages.Message) error
}

func (s *funcSink) Write(_ context.Context, batch []*stages.Message) error {
	s.calls++
	return s.write(s.calls, batch)
}
func (s *funcSink) Close(context.Context) error { return nil }

func TestSinkLoop(t *testing.T) {
	// The second record of three fails on the first write.
	failSecond := func(call int, batch []*stages.Message) error {
		if call == 1 {
			return &stages.BatchError{Errs: []error{nil, errTransient, nil}[:len(batch)]}
		}
		return nil
	}
	for _, tc := range []struct {
		name      string
		stage     *pipeline.Stage
		ordered   bool
		stop      bool
		parts     []int
		want      []answered
		wantCalls int
	}{
		{"a record failed: nak'ed with the backoff, the others acked", testStage(pipeline.OnErrorRetry, 5, testBackoff...), false, false, []int{-1, -1, -1},
			[]answered{{acks: 1}, {naks: 1}, {acks: 1}}, 1},
		{"ordered: the failed record written again in place", testStage(pipeline.OnErrorRetry, 5, time.Millisecond), true, false, []int{0, 0, 1},
			[]answered{{acks: 1}, {acks: 1}, {acks: 1}}, 2},
		{"ordered, told to stop: its partition goes back from it on", testStage(pipeline.OnErrorRetry, 5, time.Millisecond), true, true, []int{1, 0, 0},
			[]answered{{acks: 1}, {naks: 1}, {naks: 1}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.stage
			st.Role = stages.RoleSink
			sink := &funcSink{write: failSecond}
			w := testWorker(st, &sinkStep{sink: sink}, tc.ordered)
			var msgs []*testMsg
			for i, k := range tc.parts {
				m := newTestMsg("in", uint64(i+1), 1, "{}")
				msgs = append(msgs, m)
				w.batch.add(delivery{jm: m, part: k})
			}
			stop, cancel := context.WithCancel(context.Background())
			if tc.stop {
				cancel()
			}
			defer cancel()
			w.process(stop, context.Background())
			for i, m := range msgs {
				if got := answersOf(m, &stageStats{}); got != tc.want[i] {
					t.Errorf("record %d answered %+v, want %+v", i+1, got, tc.want[i])
				}
			}
			if sink.calls != tc.wantCalls {
				t.Errorf("sink called %d times, want %d", sink.calls, tc.wantCalls)
			}
			acked := uint64(0)
			for _, a := range tc.want {
				acked += uint64(a.acks)
			}
			if out := w.stats.out.Load(); out != acked {
				t.Errorf("out = %d, want %d", out, acked)
			}
			if !tc.ordered && !slices.Equal(msgs[1].nakDelays, []time.Duration{time.Second}) {
				t.Errorf("nak delays %v, want [1s]", msgs[1].nakDelays)
			}
		})
	}
}

// windowedFilter is a Windowed transform that filters every input and
// fails its checkpoints while failCheckpoints is set.
type windowedFilter struct {
	failCheckpoints bool
	assigned        []int
	checkpoints     []map[int][]byte
}

func (t *windowedFilter) Process(_ context.Context, _ *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	return out, nil
}
func (t *windowedFilter) Close(context.Context) error { return nil }
func (t *windowedFilter) Assign(_ context.Context, k int) ([]byte, error) {
	t.assigned = append(t.assigned, k)
	return nil, nil
}
func (t *windowedFilter) Advance(_ context.Context, _ int, _ time.Time, out []*stages.Message) ([]*stages.Message, error) {
	return out, nil
}
func (t *windowedFilter) Checkpoint(_ context.Context, snaps map[int][]byte) error {
	t.checkpoints = append(t.checkpoints, snaps)
	if t.failCheckpoints {
		return errTransient
	}
	return nil
}

// TestWindowedCheckpoint: a Windowed transform's state is checkpointed
// before its batch is acknowledged; a batch whose checkpoint fails goes
// back to the server as a whole, and the partitions it touched are loaded
// again from their checkpoint before their next input.
func TestWindowedCheckpoint(t *testing.T) {
	st := testStage(pipeline.OnErrorRetry, 5)
	tr := &windowedFilter{failCheckpoints: true}
	w := testWorker(st, &transformStep{transform: tr, routes: outputRoutes(st)}, true)
	w.window = &windowPart{marks: newMarks("s.m.0", time.Minute), windowed: tr,
		touched: make(map[int]bool), reload: make(map[int]bool), stopTimeout: time.Second, log: w.log}
	ctx := context.Background()
	batch := func(parts ...int) []*testMsg {
		var msgs []*testMsg
		for i, k := range parts {
			m := newTestMsg("in", uint64(i+1), 1, "{}")
			msgs = append(msgs, m)
			w.batch.add(delivery{jm: m, part: k})
		}
		return msgs
	}

	first := batch(0, 1)
	w.process(ctx, ctx)
	for i, m := range first {
		if got := answersOf(m, &stageStats{}); got != (answered{naks: 1}) {
			t.Errorf("checkpoint failed: input %d answered %+v, want a nak", i+1, got)
		}
	}
	if len(tr.checkpoints) != 1 || len(tr.checkpoints[0]) != 2 {
		t.Fatalf("checkpoints %v, want one of partitions 0 and 1", tr.checkpoints)
	}
	if got := w.stats.filtered.Load(); got != 0 {
		t.Errorf("filtered = %d before any input was acknowledged", got)
	}

	tr.failCheckpoints = false
	second := batch(1)
	w.process(ctx, ctx)
	if !slices.Equal(tr.assigned, []int{1}) {
		t.Errorf("partitions loaded again %v, want [1]", tr.assigned)
	}
	if got := answersOf(second[0], &stageStats{}); got != (answered{acks: 1}) {
		t.Errorf("checkpoint stored: answered %+v, want an ack", got)
	}
	if len(tr.checkpoints) != 2 || len(tr.checkpoints[1]) != 1 {
		t.Errorf("checkpoints %v, want a second one of partition 1", tr.checkpoints)
	}
	if !w.window.reload[0] || w.window.reload[1] {
		t.Errorf("partitions to load again %v, want only 0", w.window.reload)
	}
}
