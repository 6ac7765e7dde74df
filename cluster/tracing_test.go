package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/tracing"
	"github.com/sluicehq/sluice/internal/tracing/tracingtest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages/builtin"
)

// TestWorkerTracing: a worker given a tracer makes, for each record of a
// deployed pipeline, one trace of a span per stage.
func TestWorkerTracing(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(k, "")
	}
	recv := tracingtest.Start(t)
	tp, err := tracing.Start(context.Background(), tracing.Config{Endpoint: recv.Endpoint(), SampleRatio: 1, Worker: "w1"})
	if err != nil || tp == nil {
		t.Fatalf("tracing.Start = %v, %v", tp, err)
	}
	nc := natstest.Connect(t, natstest.Server(t))
	out := filepath.Join(t.TempDir(), "out.jsonl")
	const records = 5
	deployGenerated(t, nc, "traced", records, 0, out)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cluster.RunWorker(ctx, nc, cluster.WorkerOptions{ID: "w1", LeaseTTL: 2 * time.Second, StopTimeout: 10 * time.Second, Registry: builtin.NewRegistry(),
			Policy: pipeline.Policy{DataDir: os.TempDir()}, Tracer: tp.TracerProvider()})
	}()
	waitRun(t, nc, "traced", 1)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	traces := make(map[string]map[string]string) // trace -> span name -> parent
	for _, s := range recv.Spans() {
		if traces[s.TraceID] == nil {
			traces[s.TraceID] = make(map[string]string)
		}
		traces[s.TraceID][s.Name] = s.ParentSpanID
		if s.Resource["sluice.worker"] != "w1" || s.Attributes["sluice.pipeline"] != "traced" {
			t.Errorf("span %s: resource %v, attributes %v", s.Name, s.Resource, s.Attributes)
		}
	}
	if len(traces) != records {
		t.Fatalf("%d traces, want %d: %v", len(traces), records, traces)
	}
	for id, spans := range traces {
		if len(spans) != 3 || spans["source gen"] != "" || spans["transform double"] == "" || spans["sink out"] == "" {
			t.Errorf("trace %s: spans and parents %v", id, spans)
		}
	}
}
