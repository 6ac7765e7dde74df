package runner

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// filterAll is a transform that drops every record.
type filterAll struct{}

func (filterAll) Process(_ context.Context, _ *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	return out, nil
}
func (filterAll) Close(context.Context) error { return nil }

// BenchmarkLoopFiltered runs batches of inputs through the worker loop
// with a transform that filters them all: the loop's own work per input
// (bookkeeping, lineage, answering), without a server.
func BenchmarkLoopFiltered(b *testing.B) {
	st := &pipeline.Stage{Name: "s", Role: stages.RoleTransform, OnError: pipeline.OnErrorRetry, MaxDeliver: 5}
	msgs := make([]*testMsg, batchSize)
	for i := range msgs {
		msgs[i] = newTestMsg("in", uint64(i+1), 1, `{"a":1}`)
	}
	w := testWorker(st, &transformStep{transform: filterAll{}, routes: outputRoutes(st)}, false)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range msgs {
			w.batch.add(delivery{jm: m, part: -1})
		}
		w.process(ctx, ctx)
	}
	if got := w.stats.filtered.Load(); got == 0 {
		b.Fatal("nothing filtered")
	}
}
