package runner_test

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// BenchmarkPipeline runs b.N generated records of about 200 bytes through
// pipelines on a real nats-server, fused (the defaults: every stage in the
// source's loop) and with fusion off (a stream between every two stages),
// and reports msgs/s of the whole run (provisioning included; use
// -benchtime=200000x or more so it is small).
//
//	go test ./runner -run XXX -bench Pipeline -benchtime 200000x
func BenchmarkPipeline(b *testing.B) {
	const template = `{"id": seq, "customer": "customer-" + string(seq % 1000), "country": "DE",` +
		` "amount": seq % 500 + 0.5, "items": seq % 7, "note": "a JSON record of about two hundred bytes for the benchmark",` +
		` "placed_at": "2026-11-24T12:00:00Z"}`
	for _, bc := range []struct {
		name, stages string
	}{
		{"1-hop-map", `
  - {name: m1, transform: map, with: {expr: '{"id": id, "customer": customer, "country": country, "amount": amount * 2, "items": items, "note": note, "placed_at": placed_at}'}}`},
		{"3-stage", `
  - {name: m1, transform: map, with: {expr: '{"id": id, "customer": customer, "country": country, "amount": amount * 2, "items": items, "note": note, "placed_at": placed_at}'}}
  - {name: f, transform: filter, with: {expr: 'amount >= 0'}}
  - {name: m2, transform: map, with: {expr: '{"id": id, "customer": upper(customer), "amount": amount, "items": items, "note": note, "placed_at": placed_at}'}}`},
	} {
		for _, v := range []struct{ storage, fusion string }{{"file", "auto"}, {"memory", "auto"}, {"file", "off"}, {"memory", "off"}} {
			name := bc.name + "/" + v.storage + "/fused"
			if v.fusion == "off" {
				name = bc.name + "/" + v.storage + "/streams"
			}
			b.Run(name, func(b *testing.B) {
				srv := natstest.Server(b)
				nc := natstest.Connect(b, srv)
				yaml := fmt.Sprintf(`
name: bench
settings: {storage: %s, fusion: "%s"}
stages:
  - {name: gen, source: generate, with: {count: %d, template: '%s'}}%s
  - {name: out, sink: discard}
`, v.storage, v.fusion, b.N, template, bc.stages)
				p, err := pipeline.Parse("bench.yaml", []byte(yaml), pipeline.Options{Registry: builtin.NewRegistry()})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				sum, err := runner.Run(context.Background(), nc, p, runner.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/sum.Elapsed.Seconds(), "msgs/s")
			})
		}
	}
}

// sleepySink sleeps a millisecond per batch and counts what it got.
type sleepySink struct{ n atomic.Uint64 }

func (s *sleepySink) Write(_ context.Context, batch []*stages.Message) error {
	time.Sleep(time.Millisecond)
	s.n.Add(uint64(len(batch)))
	return nil
}
func (s *sleepySink) Close(context.Context) error { return nil }

// BenchmarkBackpressure runs b.N generated records as fast as the source
// makes them into a sink that sleeps 1 ms a batch, and reports the peak RSS
// of the process (server included). The stage buffer (max_buffer,
// DiscardNew) bounds what waits for the sink whatever b.N is; what grows
// with the rate is the streams' memory of message IDs for dedup_window,
// which the sub-benchmarks vary. It fails if a record is lost.
//
//	go test ./runner -run XXX -bench Backpressure -benchtime 2000000x
func BenchmarkBackpressure(b *testing.B) {
	for _, window := range []string{"2m", "10s", "1s"} {
		b.Run("dedup_window="+window, func(b *testing.B) {
			sink := new(sleepySink)
			reg := builtin.NewRegistry()
			if err := reg.Register(stages.Spec{
				Name:    "sleepy",
				Summary: "sleeps 1 ms a batch",
				NewSink: func(stages.Params, stages.Info) (stages.Sink, error) { return sink, nil },
			}); err != nil {
				b.Fatal(err)
			}
			srv := natstest.Server(b)
			nc := natstest.Connect(b, srv)
			p, err := pipeline.Parse("bp.yaml", []byte(fmt.Sprintf(`
name: backpressure
settings: {dedup_window: %s}
stages:
  - {name: gen, source: generate, with: {count: %d, template: '{"id": seq, "note": "a record of some size to fill the buffer with"}'}}
  - {name: out, sink: sleepy}
`, window, b.N)), pipeline.Options{Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			debug.FreeOSMemory()                                      // what earlier runs left
			_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // restart VmHWM
			b.ResetTimer()
			sum, err := runner.Run(context.Background(), nc, p, runner.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if got := sink.n.Load(); got != uint64(b.N) {
				b.Fatalf("the sink got %d records of %d", got, b.N)
			}
			b.ReportMetric(float64(b.N)/sum.Elapsed.Seconds(), "msgs/s")
			if kib := peakRSSKiB(); kib > 0 {
				b.ReportMetric(float64(kib)/1024, "peak-RSS-MiB")
			}
		})
	}
}

// peakRSSKiB returns VmHWM of /proc/self/status in KiB, or -1 where there
// is none.
func peakRSSKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kib
			}
		}
	}
	return -1
}
