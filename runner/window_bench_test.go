package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// windowBenchKeys is how many keys the window benchmark counts by.
const windowBenchKeys = 10_000

// clockSource yields n records {"k": i % keys, "ts": ...}, perSecond of
// event time per event-second, at most rate per second of wall time (0:
// as fast as it can), and notes when it read the first record of each
// event-second: when the watermark passed the end of the window before.
type clockSource struct {
	n, perSecond int
	rate         float64
	start        time.Time
	i            int
	mu           *sync.Mutex
	passed       map[int64]time.Time // window end, Unix seconds -> when the watermark passed it
}

func (s *clockSource) Read(ctx context.Context) (*stages.Message, error) {
	if s.i == s.n {
		return nil, io.EOF
	}
	if s.rate > 0 {
		if wait := time.Until(s.start.Add(time.Duration(float64(s.i) / s.rate * float64(time.Second)))); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	sec := int64(windowBase) + int64(s.i/s.perSecond)
	if s.i%s.perSecond == 0 {
		s.mu.Lock()
		s.passed[sec] = time.Now()
		s.mu.Unlock()
	}
	m := stages.NewMessage(fmt.Appendf(nil, `{"k": %d, "ts": %d}`, s.i%windowBenchKeys, sec))
	s.i++
	return m, nil
}

func (s *clockSource) Close(context.Context) error { return nil }

// arrivalSink notes when each window record arrives, by window end.
type arrivalSink struct {
	mu      *sync.Mutex
	arrived map[int64]time.Time // window end -> first arrival
	n       int
}

func (s *arrivalSink) Write(_ context.Context, batch []*stages.Message) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range batch {
		var r struct {
			End time.Time `json:"window_end"`
		}
		b, err := m.Payload()
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return stages.Permanent(err)
		}
		if _, ok := s.arrived[r.End.Unix()]; !ok {
			s.arrived[r.End.Unix()] = now
		}
		s.n++
	}
	return nil
}

func (s *arrivalSink) Close(context.Context) error { return nil }

// BenchmarkWindow runs b.N records keyed by 10,000 keys (4 partitions)
// through a 1-second tumbling count into a sink, 1,000 records per second
// of event time, and reports:
//   - records/s: b.N over the whole run (records in, windows out, drained);
//   - emit-p50-ms and emit-p99-ms: for each window, from the moment the
//     source read the first record past its end (the watermark passed it)
//     to the first of its records reaching the sink (the window's hop
//     and the sink's included).
//
// "unpaced" runs the source as fast as it goes (throughput; the delay
// then includes the backlog); "paced" at 5,000 records/s (the delay of a
// pipeline that keeps up).
//
//	go test ./runner -run XXX -bench Window -benchtime 200000x
func BenchmarkWindow(b *testing.B) {
	for _, bc := range []struct {
		name string
		rate float64
	}{{"unpaced", 0}, {"paced", 5000}} {
		b.Run(bc.name, func(b *testing.B) {
			var mu sync.Mutex
			src := &clockSource{n: b.N, perSecond: 1000, rate: bc.rate, mu: &mu, passed: map[int64]time.Time{}}
			sink := &arrivalSink{mu: &mu, arrived: map[int64]time.Time{}}
			reg := builtin.NewRegistry()
			for _, s := range []stages.Spec{
				{Name: "clock", Summary: "benchmark source", NewSource: func(stages.Params, stages.Info) (stages.Source, error) { return src, nil }},
				{Name: "arrival", Summary: "benchmark sink", NewSink: func(stages.Params, stages.Info) (stages.Sink, error) { return sink, nil }},
			} {
				if err := reg.Register(s); err != nil {
					b.Fatal(err)
				}
			}
			nc := natstest.Connect(b, natstest.Server(b))
			p, err := pipeline.Parse("bench.yaml", []byte(`
name: winbench
stages:
  - {name: src, source: clock, event_time: ts, key: k, partitions: 4}
  - name: counts
    transform: window
    replicas: 2
    with: {type: tumbling, size: 1s, key: k, aggregate: {n: count}}
  - {name: out, sink: arrival}
`), pipeline.Options{Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			src.start = time.Now()
			sum, err := runner.Run(context.Background(), nc, p, runner.Options{Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/sum.Elapsed.Seconds(), "records/s")
			var delays []time.Duration
			for end, at := range sink.arrived {
				if passed, ok := src.passed[end]; ok {
					delays = append(delays, at.Sub(passed))
				}
			}
			if len(delays) > 0 {
				slices.Sort(delays)
				b.ReportMetric(float64(delays[len(delays)/2].Microseconds())/1000, "emit-p50-ms")
				b.ReportMetric(float64(delays[len(delays)*99/100].Microseconds())/1000, "emit-p99-ms")
			}
		})
	}
}
