package runner

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// countingObserver counts what it is told, as cheaply as an observer can.
type countingObserver struct{ batches, records, latencies, writes atomic.Int64 }

func (o *countingObserver) Stage(string, string, stages.Role) StageObserver { return o }
func (o *countingObserver) Batch(f BatchFigures) {
	o.batches.Add(1)
	o.records.Add(int64(f.Records))
	o.latencies.Add(int64(len(f.Latencies)))
}
func (o *countingObserver) Written(time.Duration, int) { o.writes.Add(1) }
func (o *countingObserver) Lag(time.Duration)          {}

// discardSink writes nothing.
type discardSink struct{}

func (discardSink) Write(context.Context, []*stages.Message) error { return nil }
func (discardSink) Close(context.Context) error                    { return nil }

// BenchmarkLoopObserver runs batches of inputs through the worker loop of
// a filtering transform and of a sink, each without and with an Observer,
// the inputs carrying Sluice-Read-Time: what observing costs the hop (the
// Observer's own cost, such as the Prometheus histograms', is measured in
// internal/observe).
//
//	go test ./runner -run XXX -bench LoopObserver -benchmem
func BenchmarkLoopObserver(b *testing.B) {
	readTime := strconv.FormatInt(time.Now().UnixNano(), 10)
	for _, role := range []stages.Role{stages.RoleTransform, stages.RoleSink} {
		for _, observed := range []bool{false, true} {
			name := role.String() + "/none"
			if observed {
				name = role.String() + "/observer"
			}
			b.Run(name, func(b *testing.B) {
				st := &pipeline.Stage{Name: "s", Role: role, OnError: pipeline.OnErrorRetry, MaxDeliver: 5}
				msgs := make([]*testMsg, batchSize)
				for i := range msgs {
					msgs[i] = newTestMsg("in", uint64(i+1), 1, `{"a":1}`)
					msgs[i].hdr[stages.HeaderReadTime] = []string{readTime}
				}
				var s step = &transformStep{transform: filterAll{}, routes: outputRoutes(st)}
				if role == stages.RoleSink {
					s = &sinkStep{sink: discardSink{}}
				}
				w := testWorker(st, s, false)
				obs := &countingObserver{}
				if observed {
					w.run.opts.Observer = obs
					w.obs = newStageObs(w.run, st.Name, role, nil)
					w.count.obs = w.obs
					if ss, ok := s.(*sinkStep); ok {
						ss.obs = w.obs
					}
				}
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					for _, m := range msgs {
						w.batch.add(delivery{jm: m, part: -1})
					}
					w.process(ctx, ctx)
				}
				if observed && obs.records.Load() == 0 {
					b.Fatal("nothing observed")
				}
				if observed && role == stages.RoleSink && obs.latencies.Load() != obs.records.Load() {
					b.Fatalf("%d latencies for %d records", obs.latencies.Load(), obs.records.Load())
				}
			})
		}
	}
}
