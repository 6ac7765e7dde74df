package runner_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/observe"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// recorder is a runner.Observer that adds up what it is told, per stage.
type recorder struct {
	mu     sync.Mutex
	stages map[string]*stageRecord
}

type stageRecord struct {
	role                                         stages.Role
	batches, records, retries, latencies, writes atomic.Int64
	badLatency                                   atomic.Bool
}

func (r *recorder) Stage(_, stage string, role stages.Role) runner.StageObserver {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stages[stage] == nil {
		r.stages[stage] = &stageRecord{role: role}
	}
	return r.stages[stage]
}

func (s *stageRecord) Batch(f runner.BatchFigures) {
	s.batches.Add(1)
	s.records.Add(int64(f.Records))
	s.retries.Add(int64(f.Retries))
	s.latencies.Add(int64(len(f.Latencies)))
	for _, d := range f.Latencies {
		if d < 0 || d > time.Minute {
			s.badLatency.Store(true)
		}
	}
}
func (s *stageRecord) Written(time.Duration, int) { s.writes.Add(1) }
func (s *stageRecord) Lag(time.Duration)          {}

// readTimeSink records whether each record it writes carries
// Sluice-Read-Time.
type readTimeSink struct{ with, without *atomic.Int64 }

func (s readTimeSink) Write(_ context.Context, batch []*stages.Message) error {
	for _, m := range batch {
		if m.Header.Get(stages.HeaderReadTime) != "" {
			s.with.Add(1)
		} else {
			s.without.Add(1)
		}
	}
	return nil
}
func (readTimeSink) Close(context.Context) error { return nil }

// With an Observer, each stage reports its batches: the records add up,
// retries in place of a partitioned input count, and the sink measures an
// end-to-end latency for every record it wrote, its read time carried
// through a transform. Without one, no record carries a read time.
func TestObserver(t *testing.T) {
	const n = 400
	e := newEnv(t)
	var with, without atomic.Int64
	mustRegister(t, e.reg, stages.Spec{
		Name:    "headers",
		Summary: "counts records with and without a read time",
		NewSink: func(stages.Params, stages.Info) (stages.Sink, error) { return readTimeSink{&with, &without}, nil },
	})
	calls := sync.Map{}
	mustRegister(t, e.reg, stages.Spec{
		Name:    "fail_once",
		Summary: "fails the first call on every 50th record",
		NewTransform: func(stages.Params, stages.Info) (stages.Transform, error) {
			return transformFunc(func(m *stages.Message) error {
				rec, err := m.Record()
				if err != nil {
					return err
				}
				k := rec["n"].(int64)
				if _, again := calls.LoadOrStore(k, true); !again && k%50 == 0 {
					return fmt.Errorf("first call on %d", k)
				}
				return nil
			}), nil
		},
	})
	p := e.parse(t, fmt.Sprintf(`
name: observed
settings: {backoff: [10ms]}
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '{"user": seq %% 5, "n": seq}'}
    key: user
    partitions: 2
  - {name: work, transform: fail_once}
  - {name: out, sink: headers}
`, n))

	rec := &recorder{stages: map[string]*stageRecord{}}
	if _, err := runner.Run(context.Background(), e.nc, p, runner.Options{Registry: e.reg, Observer: rec}); err != nil {
		t.Fatal(err)
	}
	if with.Load() != n || without.Load() != 0 {
		t.Errorf("with an observer: %d records with a read time, %d without; want all %d with", with.Load(), without.Load(), n)
	}
	for _, name := range []string{"gen", "work", "out"} {
		if s := rec.stages[name]; s == nil || s.batches.Load() == 0 {
			t.Fatalf("stage %s: no batch observed", name)
		}
	}
	gen, work, out := rec.stages["gen"], rec.stages["work"], rec.stages["out"]
	if gen.role != stages.RoleSource || work.role != stages.RoleTransform || out.role != stages.RoleSink {
		t.Errorf("roles: %v %v %v", gen.role, work.role, out.role)
	}
	if gen.records.Load() != n || out.records.Load() != n {
		t.Errorf("records: source %d, sink %d; want %d each", gen.records.Load(), out.records.Load(), n)
	}
	if got := work.retries.Load(); got != n/50 {
		t.Errorf("work: %d retries, want %d (each 50th record retried in place once)", got, n/50)
	}
	if got := out.latencies.Load(); got != n || out.badLatency.Load() {
		t.Errorf("sink: %d end-to-end latencies (some out of range: %v), want %d", got, out.badLatency.Load(), n)
	}
	if out.writes.Load() == 0 || work.writes.Load() != 0 {
		t.Errorf("writes: sink %d, transform %d; want some and none", out.writes.Load(), work.writes.Load())
	}

	with.Store(0)
	if _, err := runner.Run(context.Background(), e.nc, p, runner.Options{Registry: e.reg}); err != nil {
		t.Fatal(err)
	}
	if with.Load() != 0 || without.Load() != n {
		t.Errorf("without an observer: %d records with a read time, %d without; want none of %d", with.Load(), without.Load(), n)
	}
}

// BenchmarkPipelineObserved runs b.N generated records through
// generate → map → discard on a real nats-server (memory storage),
// without and with the Prometheus observer of `--http`, and reports
// msgs/s of the whole run: what observing costs a pipeline.
//
//	go test ./runner -run XXX -bench PipelineObserved -benchtime 200000x -count 3
func BenchmarkPipelineObserved(b *testing.B) {
	for _, observed := range []bool{false, true} {
		name := "none"
		if observed {
			name = "prometheus"
		}
		b.Run(name, func(b *testing.B) {
			nc := natstest.Connect(b, natstest.Server(b))
			p, err := pipeline.Parse("bench.yaml", []byte(fmt.Sprintf(`
name: bench
settings: {storage: memory}
stages:
  - {name: gen, source: generate, with: {count: %d, template: '{"id": seq, "note": "a record of about a hundred bytes for the benchmark of observing"}'}}
  - {name: m1, transform: map, with: {expr: '{"id": id * 2, "note": note}'}}
  - {name: out, sink: discard}
`, b.N)), pipeline.Options{Registry: builtin.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			opts := runner.Options{}
			if observed {
				s, err := observe.Listen(observe.Options{Addr: "127.0.0.1:0"})
				if err != nil {
					b.Fatal(err)
				}
				opts.Observer = s.Observer()
			}
			b.ReportAllocs()
			b.ResetTimer()
			sum, err := runner.Run(context.Background(), nc, p, opts)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/sum.Elapsed.Seconds(), "msgs/s")
		})
	}
}
