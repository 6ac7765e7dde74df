package runner_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// collector is a test sink's memory: every payload written, per stage.
type collector struct {
	mu   sync.Mutex
	msgs map[string][]string
}

func (c *collector) add(stage string, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs[stage] = append(c.msgs[stage], string(payload))
}

func (c *collector) sorted(stage string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.msgs[stage])
	sort.Strings(out)
	return out
}

type collectSink struct {
	c     *collector
	stage string
}

func (s *collectSink) Write(_ context.Context, batch []*stages.Message) error {
	for _, m := range batch {
		b, err := m.Payload()
		if err != nil {
			return err
		}
		s.c.add(s.stage, b)
	}
	return nil
}
func (s *collectSink) Close(context.Context) error { return nil }

// flaky fails each record whose n is a multiple of every_n on its first
// fail_times deliveries, fails those that are multiples of always_n on
// every delivery, and panics on n == panic_on.
type flaky struct{ every, times, always, panicOn int }

func (f *flaky) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	n := int(rec["n"].(int64))
	if n == f.panicOn {
		panic("boom")
	}
	if f.always > 0 && n%f.always == 0 {
		return out, fmt.Errorf("always failing %d", n)
	}
	if f.every > 0 && n%f.every == 0 && in.Meta.Deliveries <= uint64(f.times) {
		return out, fmt.Errorf("flaky failure of %d", n)
	}
	return append(out, in), nil
}
func (f *flaky) Close(context.Context) error { return nil }

// testRegistry returns the built-in types plus "collect" (a sink recording
// into c) and "flaky".
func testRegistry(t *testing.T, c *collector) *stages.Registry {
	t.Helper()
	reg := builtin.NewRegistry()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(reg.Register(stages.Spec{
		Name:    "collect",
		Summary: "records payloads for the test",
		NewSink: func(_ stages.Params, info stages.Info) (stages.Sink, error) {
			return &collectSink{c: c, stage: info.Stage}, nil
		},
	}))
	must(reg.Register(stages.Spec{
		Name:    "flaky",
		Summary: "fails or panics on chosen records",
		Params: []stages.Param{
			{Name: "every_n", Type: stages.TypeInt, Default: 0},
			{Name: "fail_times", Type: stages.TypeInt, Default: 0},
			{Name: "always_n", Type: stages.TypeInt, Default: 0},
			{Name: "panic_on", Type: stages.TypeInt, Default: -1},
		},
		NewTransform: func(p stages.Params, _ stages.Info) (stages.Transform, error) {
			return &flaky{every: p.Int("every_n"), times: p.Int("fail_times"), always: p.Int("always_n"), panicOn: p.Int("panic_on")}, nil
		},
	}))
	must(reg.Register(stages.Spec{
		Name:    "slow",
		Summary: "sleeps on chosen records and counts calls",
		Params: []stages.Param{
			{Name: "every_n", Type: stages.TypeInt, Default: 0},
			{Name: "sleep", Type: stages.TypeString, Default: "1s"},
		},
		NewTransform: func(p stages.Params, _ stages.Info) (stages.Transform, error) {
			d, err := time.ParseDuration(p.String("sleep"))
			return &slow{every: p.Int("every_n"), sleep: d, c: c}, err
		},
	}))
	return reg
}

// slow sleeps for sleep on each record whose n is a multiple of every_n,
// and counts how many times it saw each n.
type slow struct {
	every int
	sleep time.Duration
	c     *collector
}

func (s *slow) Process(ctx context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	n := int(rec["n"].(int64))
	s.c.add("slow-calls", []byte(strconv.Itoa(n)))
	if s.every > 0 && n%s.every == 0 {
		t := time.NewTimer(s.sleep)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return append(out, in), nil
}
func (s *slow) Close(context.Context) error { return nil }

type env struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	reg *stages.Registry
	c   *collector
	dir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := natstest.Server(t)
	nc := natstest.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{msgs: map[string][]string{}}
	return &env{nc: nc, js: js, reg: testRegistry(t, c), c: c, dir: t.TempDir()}
}

func (e *env) parse(t *testing.T, yaml string) *pipeline.Pipeline {
	t.Helper()
	yaml = strings.ReplaceAll(yaml, "$DIR", e.dir)
	p, err := pipeline.Parse("test.yaml", []byte(yaml), pipeline.Options{Registry: e.reg})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

func (e *env) run(t *testing.T, ctx context.Context, p *pipeline.Pipeline) *runner.Summary {
	t.Helper()
	sum, err := runner.Run(ctx, e.nc, p, runner.Options{Registry: e.reg})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return sum
}

func stageSum(t *testing.T, sum *runner.Summary, name string) runner.StageSummary {
	t.Helper()
	for _, s := range sum.Stages {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no stage %q in summary", name)
	return runner.StageSummary{}
}

// deadLetters reads every message of the pipeline's dead-letter stream.
func (e *env) deadLetters(t *testing.T, p string) []*nats.Msg {
	t.Helper()
	return natstest.StreamMessages(t, e.nc, schema.DLQStreamName(p))
}

func seqRecords(from, to int, format string) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf(format, i))
	}
	sort.Strings(out)
	return out
}

func TestRunLinearPipeline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		storage  string
		replicas int
	}{
		{"file storage, one worker", "file", 1},
		{"memory storage, four workers", "memory", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.parse(t, fmt.Sprintf(`
name: linear
settings:
  storage: %s
stages:
  - name: gen
    source: generate
    with: {count: 2000, template: '{"n": seq}'}
  - name: double
    transform: map
    replicas: %d
    with: {expr: '{"n": n, "twice": n * 2}'}
  - name: even
    transform: filter
    replicas: %d
    with: {expr: 'n %% 2 == 0'}
  - name: out
    sink: collect
    replicas: %d
`, tc.storage, tc.replicas, tc.replicas, tc.replicas))
			sum := e.run(t, context.Background(), p)
			if sum.Interrupted || sum.Run != 1 {
				t.Fatalf("summary = %+v, want run 1 finished", sum)
			}
			var want []string
			for i := 0; i < 2000; i += 2 {
				want = append(want, fmt.Sprintf(`{"n":%d,"twice":%d}`, i, 2*i))
			}
			sort.Strings(want)
			if got := e.c.sorted("out"); !slices.Equal(got, want) {
				t.Fatalf("sink got %d records, want %d; first got %q", len(got), len(want), got[:min(3, len(got))])
			}
			checkCounts(t, stageSum(t, sum, "gen"), 2000, 2000, 0, 0)
			checkCounts(t, stageSum(t, sum, "double"), 2000, 2000, 0, 0)
			checkCounts(t, stageSum(t, sum, "even"), 2000, 1000, 1000, 0)
			checkCounts(t, stageSum(t, sum, "out"), 1000, 1000, 0, 0)
		})
	}
}

func checkCounts(t *testing.T, s runner.StageSummary, in, out, filtered, dead uint64) {
	t.Helper()
	if s.In != in || s.Out != out || s.Filtered != filtered || s.DeadLetters != dead {
		t.Errorf("stage %s: in/out/filtered/dead = %d/%d/%d/%d, want %d/%d/%d/%d",
			s.Name, s.In, s.Out, s.Filtered, s.DeadLetters, in, out, filtered, dead)
	}
}

func TestRunFanOutFanIn(t *testing.T) {
	e := newEnv(t)
	p := e.parse(t, `
name: fan
stages:
  - name: gen
    source: generate
    with: {count: 300, template: '{"n": seq}'}
  - name: small
    transform: filter
    with: {expr: 'n < 100'}
  - name: large
    from: gen
    transform: filter
    with: {expr: 'n >= 200'}
  - name: all
    from: gen
    sink: collect
  - name: ends
    from: [small, large]
    sink: collect
`)
	sum := e.run(t, context.Background(), p)
	if got, want := e.c.sorted("all"), seqRecords(0, 300, `{"n":%d}`); !slices.Equal(got, want) {
		t.Errorf("fan-out branch got %d records, want %d", len(got), len(want))
	}
	want := append(seqRecords(0, 100, `{"n":%d}`), seqRecords(200, 300, `{"n":%d}`)...)
	sort.Strings(want)
	if got := e.c.sorted("ends"); !slices.Equal(got, want) {
		t.Errorf("fan-in got %d records, want %d", len(got), len(want))
	}
	checkCounts(t, stageSum(t, sum, "ends"), 200, 200, 0, 0)
}

func TestRunDeadLettersAndRetries(t *testing.T) {
	e := newEnv(t)
	input := filepath.Join(e.dir, "in.jsonl")
	var lines []string
	for i := range 50 {
		if i%10 == 3 {
			lines = append(lines, fmt.Sprintf(`{"n": %d, broken`, i))
			continue
		}
		lines = append(lines, fmt.Sprintf(`{"n": %d}`, i))
	}
	if err := os.WriteFile(input, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// n % 7 == 0 fails twice then succeeds (3 attempts allowed); n == 20
	// panics every time and is dead-lettered after 3 attempts.
	p := e.parse(t, `
name: faults
settings:
  max_deliver: 3
  backoff: [10ms]
stages:
  - name: read
    source: file
    with: {path: $DIR/in.jsonl}
  - name: work
    transform: flaky
    with: {every_n: 7, fail_times: 2, panic_on: 20}
  - name: out
    sink: collect
`)
	sum := e.run(t, context.Background(), p)
	var want []string
	for i := range 50 {
		if i%10 != 3 && i != 20 {
			want = append(want, fmt.Sprintf(`{"n": %d}`, i))
		}
	}
	sort.Strings(want)
	if got := e.c.sorted("out"); !slices.Equal(got, want) {
		t.Errorf("sink got %v\nwant %v", got, want)
	}
	work := stageSum(t, sum, "work")
	// 5 malformed + 1 panicking are dead-lettered; the 8 multiples of 7
	// fail twice each, and the panic twice before its third attempt.
	if work.DeadLetters != 6 || work.Errors != 8*2+2 || work.Out != 44 {
		t.Errorf("work summary = %+v, want 6 dead letters, 18 errors, 44 out", work)
	}

	dead := e.deadLetters(t, "faults")
	if len(dead) != 6 {
		t.Fatalf("dead-letter stream holds %d messages, want 6", len(dead))
	}
	var reasons []string
	for _, m := range dead {
		if m.Header.Get(stages.HeaderStage) != "work" || m.Subject != schema.DLQSubject("faults", "work") {
			t.Errorf("dead letter %q: stage %q subject %q", m.Data, m.Header.Get(stages.HeaderStage), m.Subject)
		}
		reasons = append(reasons, m.Header.Get(stages.HeaderDeliveries)+" "+m.Header.Get(stages.HeaderError))
		if m.Header.Get(stages.HeaderOrigin) == "" {
			t.Errorf("dead letter %q lost its original headers", m.Data)
		}
	}
	sort.Strings(reasons)
	if !strings.Contains(reasons[0], "1 invalid JSON") || !strings.Contains(reasons[5], `3 stage "work" panicked: boom`) {
		t.Errorf("dead-letter reasons = %q", reasons)
	}
}

func TestRunSourceDeadLetter(t *testing.T) {
	e := newEnv(t)
	csv := "id,name\n1,a\n2,b,extra\n3,c\n"
	if err := os.WriteFile(filepath.Join(e.dir, "in.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	p := e.parse(t, `
name: csvbad
stages:
  - name: read
    source: file
    with: {path: $DIR/in.csv}
  - name: out
    sink: collect
`)
	sum := e.run(t, context.Background(), p)
	if got := e.c.sorted("out"); len(got) != 2 {
		t.Errorf("sink got %v, want 2 records", got)
	}
	checkCounts(t, stageSum(t, sum, "read"), 3, 2, 0, 1)
	dead := e.deadLetters(t, "csvbad")
	if len(dead) != 1 || dead[0].Header.Get(stages.HeaderStage) != "read" || dead[0].Header.Get(stages.HeaderError) == "" {
		t.Fatalf("dead letters = %v", dead)
	}
}

func TestRunAgainIsANewRun(t *testing.T) {
	e := newEnv(t)
	out := filepath.Join(e.dir, "out.jsonl")
	p := e.parse(t, `
name: again
stages:
  - name: gen
    source: generate
    with: {count: 100, template: '{"n": seq}'}
  - name: write
    sink: file
    with: {path: $DIR/out.jsonl}
`)
	for run := uint64(1); run <= 2; run++ {
		sum := e.run(t, context.Background(), p)
		if sum.Run != run {
			t.Fatalf("run number = %d, want %d", sum.Run, run)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "\n"); n != 100 {
			t.Fatalf("run %d wrote %d lines, want 100 (the dedup window must not swallow a new run)", run, n)
		}
	}
}

func TestRunBackpressure(t *testing.T) {
	e := newEnv(t)
	// A buffer of 20 messages between stages: the source must wait for
	// the sink, and nothing may be dropped.
	p := e.parse(t, `
name: pressure
settings:
  max_buffer: 20
stages:
  - name: gen
    source: generate
    with: {count: 3000, template: '{"n": seq}'}
  - name: pass
    transform: map
    with: {expr: '{"n": n}'}
  - name: out
    sink: collect
`)
	e.run(t, context.Background(), p)
	if got, want := e.c.sorted("out"), seqRecords(0, 3000, `{"n":%d}`); !slices.Equal(got, want) {
		t.Fatalf("sink got %d records, want %d", len(got), len(want))
	}
}

func TestRunInterrupted(t *testing.T) {
	e := newEnv(t)
	p := e.parse(t, `
name: endless
stages:
  - name: gen
    source: generate
    with: {count: 0, rate: 2000, template: '{"n": seq}'}
  - name: write
    sink: file
    with: {path: $DIR/out.jsonl}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := filepath.Join(e.dir, "out.jsonl")
	done := make(chan *runner.Summary, 1)
	go func() { done <- e.run(t, ctx, p) }()
	natstest.WaitFor(t, 10*time.Second, "output", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Count(string(b), "\n") >= 50
	})
	cancel()
	var sum *runner.Summary
	select {
	case sum = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
	if !sum.Interrupted {
		t.Error("summary does not say interrupted")
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if !strings.HasSuffix(string(b), "\n") {
		t.Fatal("output ends with a half-written line")
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Fatalf("record %s written twice", l)
		}
		seen[l] = true
	}
	if w := stageSum(t, sum, "write"); w.Out != uint64(len(lines)) {
		t.Errorf("summary says %d written, file has %d lines", w.Out, len(lines))
	}
}

func TestRunProvisionsNames(t *testing.T) {
	e := newEnv(t)
	p := e.parse(t, `
name: orders-etl
stages:
  - name: read
    source: generate
    with: {count: 1}
  - name: clean-up
    transform: map
    with: {expr: '{"x": 1}'}
  - name: write
    sink: collect
`)
	e.run(t, context.Background(), p)
	ctx := context.Background()
	for stream, subjects := range map[string][]string{
		"SLUICE_ORDERS_ETL_READ":     {"sluice.orders-etl.read", "sluice.orders-etl.read.>"},
		"SLUICE_ORDERS_ETL_CLEAN_UP": {"sluice.orders-etl.clean-up", "sluice.orders-etl.clean-up.>"},
		"SLUICE_ORDERS_ETL_DLQ":      {"sluice.orders-etl._dlq.>"},
	} {
		st, err := e.js.Stream(ctx, stream)
		if err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		if got := st.CachedInfo().Config.Subjects; !slices.Equal(got, subjects) {
			t.Errorf("stream %s subjects = %v, want %v", stream, got, subjects)
		}
	}
	for stream, consumer := range map[string]string{"SLUICE_ORDERS_ETL_READ": "clean-up", "SLUICE_ORDERS_ETL_CLEAN_UP": "write"} {
		c, err := e.js.Consumer(ctx, stream, consumer)
		if err != nil {
			t.Fatalf("consumer %s on %s: %v", consumer, stream, err)
		}
		if c.CachedInfo().Config.Durable != consumer {
			t.Errorf("consumer %s is not durable", consumer)
		}
	}
	if _, err := e.js.Stream(ctx, "SLUICE_ORDERS_ETL_WRITE"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("a sink must have no output stream, got err %v", err)
	}
}

// TestRunSinkFailureIsReported checks a sink whose Close fails makes Run
// fail, so that unflushed output is never reported as written.
func TestRunSinkFailureIsReported(t *testing.T) {
	e := newEnv(t)
	if err := e.reg.Register(stages.Spec{
		Name:    "badclose",
		Summary: "fails to close",
		NewSink: func(stages.Params, stages.Info) (stages.Sink, error) { return badClose{}, nil },
	}); err != nil {
		t.Fatal(err)
	}
	p := e.parse(t, `
name: badclose
stages:
  - name: gen
    source: generate
    with: {count: 3}
  - name: out
    sink: badclose
`)
	_, err := runner.Run(context.Background(), e.nc, p, runner.Options{Registry: e.reg})
	if err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("Run error = %v, want the sink's close error", err)
	}
}

type badClose struct{}

func (badClose) Write(context.Context, []*stages.Message) error { return nil }
func (badClose) Close(context.Context) error                    { return errors.New("disk gone") }

// TestRunSomeStages fills the source stream by hand after Provision and
// then runs only the downstream stages, which process what is buffered
// and end; a later process runs the source alone.
func TestRunSomeStages(t *testing.T) {
	e := newEnv(t)
	p := e.parse(t, `
name: split
stages:
  - name: gen
    source: generate
    with: {count: 50, template: '{"n": seq + 1000}'}
  - name: double
    transform: map
    with: {expr: '{"n": n * 2}'}
  - name: out
    sink: collect
`)
	ctx := context.Background()
	if err := runner.Provision(ctx, e.nc, p); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		msg := &nats.Msg{Subject: schema.Subject("split", "gen"), Data: fmt.Appendf(nil, `{"n": %d}`, i), Header: nats.Header{}}
		msg.Header.Set(stages.HeaderMsgID, fmt.Sprintf("by-hand/%d", i))
		if _, err := e.js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := runner.Run(ctx, e.nc, p, runner.Options{Registry: e.reg, Stages: []string{"double", "out"}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Run != 0 || sum.Interrupted || len(sum.Stages) != 2 {
		t.Fatalf("summary = %+v, want run 0 (no source ran), finished, two stages", sum)
	}
	var want []string
	for i := range 100 {
		want = append(want, fmt.Sprintf(`{"n":%d}`, 2*i))
	}
	sort.Strings(want)
	if got := e.c.sorted("out"); !slices.Equal(got, want) {
		t.Fatalf("sink got %d records, want the 100 doubles", len(got))
	}

	// The source alone starts run 1 and publishes into the same stream;
	// the downstream stages are then run again to drain it.
	if sum, err = runner.Run(ctx, e.nc, p, runner.Options{Registry: e.reg, Stages: []string{"gen"}}); err != nil || sum.Run != 1 {
		t.Fatalf("source run: %+v, %v", sum, err)
	}
	if _, err = runner.Run(ctx, e.nc, p, runner.Options{Registry: e.reg, Stages: []string{"double", "out"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		want = append(want, fmt.Sprintf(`{"n":%d}`, 2*(i+1000)))
	}
	sort.Strings(want)
	if got := e.c.sorted("out"); !slices.Equal(got, want) {
		t.Fatalf("sink got %d records, want 150", len(got))
	}

	_, err = runner.Run(ctx, e.nc, p, runner.Options{Registry: e.reg, Stages: []string{"nosuch"}})
	if !errors.Is(err, runner.ErrInvalidOption) {
		t.Fatalf("unknown stage: err = %v, want ErrInvalidOption", err)
	}
}

func TestRunOnError(t *testing.T) {
	// Of the 50 records, the 8 multiples of 7 fail their first two
	// deliveries.
	tests := []struct {
		name     string
		stage    string // the flaky stage's error keys
		out      uint64
		errors   uint64
		dead     uint64
		dropped  uint64
		deadRecs int
	}{
		{"retry succeeds", "backoff: [5ms]", 50, 16, 0, 0, 0},
		{"retry gives up after the stage's max_deliver", "max_deliver: 2\n    backoff: [5ms]", 42, 8, 8, 0, 8},
		{"dead_letter at once", "on_error: dead_letter", 42, 0, 8, 0, 8},
		{"drop", "on_error: drop", 42, 0, 0, 8, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.parse(t, `
name: onerror
settings:
  max_deliver: 5
  backoff: [1h]
stages:
  - name: gen
    source: generate
    with: {count: 50, template: '{"n": seq}'}
  - name: work
    transform: flaky
    with: {every_n: 7, fail_times: 2}
    `+tt.stage+`
  - name: out
    sink: collect
`)
			sum := e.run(t, context.Background(), p)
			work := stageSum(t, sum, "work")
			if work.Out != tt.out || work.Errors != tt.errors || work.DeadLetters != tt.dead || work.Dropped != tt.dropped {
				t.Errorf("work: out %d, errors %d, dead letters %d, dropped %d; want %d, %d, %d, %d",
					work.Out, work.Errors, work.DeadLetters, work.Dropped, tt.out, tt.errors, tt.dead, tt.dropped)
			}
			if n := len(e.c.sorted("out")); uint64(n) != tt.out {
				t.Errorf("sink got %d records, want %d", n, tt.out)
			}
			if n := len(e.deadLetters(t, "onerror")); n != tt.deadRecs {
				t.Errorf("%d dead letters, want %d", n, tt.deadRecs)
			}
		})
	}
}

func TestRunSourceDrop(t *testing.T) {
	e := newEnv(t)
	if err := os.WriteFile(filepath.Join(e.dir, "in.csv"), []byte("a,b\n1,2\n3\n4,5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := e.run(t, context.Background(), e.parse(t, `
name: srcdrop
stages:
  - name: read
    source: file
    on_error: drop
    with: {path: $DIR/in.csv}
  - name: out
    sink: collect
`))
	read := stageSum(t, sum, "read")
	if read.In != 3 || read.Out != 2 || read.Dropped != 1 || read.DeadLetters != 0 {
		t.Errorf("read = %+v, want 3 in, 2 out, 1 dropped", read)
	}
	if n := len(e.deadLetters(t, "srcdrop")); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// TestRunLongWorkKeepsItsMessages: records that take longer than ack_wait
// are not delivered again to the other worker.
func TestRunLongWorkKeepsItsMessages(t *testing.T) {
	e := newEnv(t)
	sum := e.run(t, context.Background(), e.parse(t, `
name: long
settings:
  ack_wait: 1s
stages:
  - name: gen
    source: generate
    with: {count: 20, template: '{"n": seq}'}
  - name: work
    transform: slow
    replicas: 2
    with: {every_n: 10, sleep: 1500ms}
  - name: out
    sink: collect
`))
	calls := e.c.sorted("slow-calls")
	if want := seqRecords(0, 20, "%d"); !slices.Equal(calls, want) {
		t.Fatalf("calls %v, want each record once", calls)
	}
	if work := stageSum(t, sum, "work"); work.In != 20 || work.Out != 20 {
		t.Fatalf("work = %+v", work)
	}
}

// TestRunLongWorkKeepsWhatItPulled: while a worker spends longer than
// ack_wait on a batch, the records pulled for the batches after it wait in
// this process, and are not delivered again either. The "in progress"
// signals go every third of ack_wait for thousands of held records; ack_wait
// is 2s, not less, so that a loaded machine running the race detector keeps
// them in time.
func TestRunLongWorkKeepsWhatItPulled(t *testing.T) {
	e := newEnv(t)
	const n = 7000 // more than a batch in hand and one waiting
	sum := e.run(t, context.Background(), e.parse(t, fmt.Sprintf(`
name: pulled
settings:
  ack_wait: 2s
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '{"n": seq}'}
  - name: work
    transform: slow
    with: {every_n: 2000, sleep: 3s}
  - name: out
    sink: collect
`, n)))
	if work := stageSum(t, sum, "work"); work.In != n || work.Out != n {
		t.Errorf("work = %+v, want %d in and out", work, n)
	}
	if calls := e.c.sorted("slow-calls"); len(calls) != n {
		t.Errorf("%d calls for %d records: some were delivered again", len(calls), n)
	}
}

// TestStopMidBatch: stopped while a slow transform is in the middle of a
// batch, the worker takes no further record from it (those it had not
// begun go back to the server), the run ends interrupted without an
// error, and a resumed run writes every record exactly once.
func TestStopMidBatch(t *testing.T) {
	e := newEnv(t)
	const n = 3000 // more than a batch
	p := e.parse(t, fmt.Sprintf(`
name: midbatch
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '{"n": seq}'}
  - name: work
    transform: slow
    with: {every_n: 1, sleep: 2ms}
  - name: out
    sink: collect
`, n))
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		sum *runner.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := runner.Run(ctx, e.nc, p, runner.Options{Registry: e.reg, StopTimeout: time.Minute})
		done <- result{sum, err}
	}()
	natstest.WaitFor(t, time.Minute, "the first batch under way", func() bool {
		return len(e.c.sorted("slow-calls")) >= 100
	})
	atStop := len(e.c.sorted("slow-calls"))
	cancel()
	res := <-done
	if res.err != nil || !res.sum.Interrupted {
		t.Fatalf("stopped run: %+v, %v; want interrupted, no error", res.sum, res.err)
	}
	// What the worker took while the run stopped its source, before it
	// told the worker: far from the rest of the batch (the batch in hand
	// holds up to 2000, at 2 ms each).
	if extra := len(e.c.sorted("slow-calls")) - atStop; extra > 500 {
		t.Fatalf("%d records processed after the stop: the worker went on with its batch", extra)
	}
	if work := stageSum(t, res.sum, "work"); work.In != work.Out {
		t.Errorf("work = %+v: every record taken in must be out", work)
	}

	sum := e.run(t, context.Background(), p)
	if !sum.Resumed || sum.Interrupted {
		t.Fatalf("second run: %+v, want the run resumed to its end", sum)
	}
	if got, want := e.c.sorted("out"), seqRecords(0, n, `{"n":%d}`); !slices.Equal(got, want) {
		t.Fatalf("out has %d records, want each of the %d once", len(got), n)
	}
}
