package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/tracing/tracingtest"
)

// clearOTELEnv unsets the OTEL_* variables that would change where spans
// go or which are kept.
func clearOTELEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

// TestRunTracing: `run` with SLUICE_OTLP_ENDPOINT exports a span per
// record per stage, every one of them by the time it exits; without it,
// nothing.
func TestRunTracing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endpoint  bool
		flags     bool // --otlp-endpoint and --trace-sample-ratio instead of the environment
		wantSpans int
	}{
		{"on", true, false, 30},
		{"flags", true, true, 30},
		{"off", false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearOTELEnv(t)
			recv := tracingtest.Start(t)
			args := []string{"run"}
			switch {
			case tc.flags:
				args = append(args, "--otlp-endpoint", recv.Endpoint(), "--trace-sample-ratio", "1")
			case tc.endpoint:
				t.Setenv("SLUICE_OTLP_ENDPOINT", recv.Endpoint())
				t.Setenv("SLUICE_TRACE_SAMPLE_RATIO", "1")
			default:
				t.Setenv("SLUICE_TRACE_SAMPLE_RATIO", "1")
			}
			dir := inEmptyDir(t)
			file, out := demoPipeline(t, dir)
			code, _, stderr := sluice(t, append(args, "--store-dir", filepath.Join(dir, "store"), file)...)
			if code != ExitOK {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			checkDoubled(t, out)
			spans := recv.Spans()
			if len(spans) != tc.wantSpans {
				t.Fatalf("%d spans at the receiver, want %d", len(spans), tc.wantSpans)
			}
			traces := make(map[string]map[string]bool)
			for _, s := range spans {
				if traces[s.TraceID] == nil {
					traces[s.TraceID] = make(map[string]bool)
				}
				traces[s.TraceID][s.Name] = true
				if s.Resource["service.name"] != "sluice" || s.Resource["sluice.pipelines"] == "" || s.Attributes["sluice.pipeline"] != "demo" {
					t.Errorf("span %s: resource %v, attributes %v", s.Name, s.Resource, s.Attributes)
				}
			}
			if tc.wantSpans > 0 && len(traces) != 10 {
				t.Fatalf("%d traces, want 10", len(traces))
			}
			for id, names := range traces {
				if !names["source gen"] || !names["transform double"] || !names["sink out"] {
					t.Errorf("trace %s has spans %v", id, names)
				}
			}
		})
	}
}

// TestWorkerTracing: `worker` with SLUICE_OTLP_ENDPOINT traces the
// records of a deployed pipeline, and has flushed every span when it
// exits after a stop.
func TestWorkerTracing(t *testing.T) {
	clearOTELEnv(t)
	recv := tracingtest.Start(t)
	t.Setenv("SLUICE_OTLP_ENDPOINT", recv.Endpoint())
	t.Setenv("SLUICE_TRACE_SAMPLE_RATIO", "1")
	dir := inEmptyDir(t)
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	file := writeFile(t, dir, "traced.yaml", `name: traced
stages:
  - {name: gen, source: generate, with: {count: 4, template: '{"n": seq}'}}
  - {name: double, transform: map, with: {expr: '{"n": n * 2}'}}
  - {name: out, sink: discard}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- MainContext(ctx, []string{"worker", "--nats", srv.ClientURL(), "--id", "w7"}, strings.NewReader(""), new(bytes.Buffer), &stderr)
	}()
	if code, _, errOut := sluice(t, "deploy", "--nats", srv.ClientURL(), file); code != ExitOK {
		cancel()
		<-done
		t.Fatalf("deploy: exit %d: %s", code, errOut)
	}
	natstest.WaitFor(t, 2*time.Minute, "the run to finish", func() bool {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		st, err := cluster.Status(sctx, nc, "traced")
		return err == nil && len(st.Pipelines) == 1 && st.Pipelines[0].RunState == "finished"
	})
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("worker: exit %d: %s", code, stderr.String())
	}
	traces := make(map[string]int)
	for _, s := range recv.Spans() {
		traces[s.TraceID]++
		if s.Resource["sluice.worker"] != "w7" {
			t.Errorf("span %s: resource %v", s.Name, s.Resource)
		}
	}
	if len(traces) != 4 {
		t.Fatalf("%d traces, want 4: %v", len(traces), traces)
	}
	for id, n := range traces {
		if n != 3 {
			t.Errorf("trace %s has %d spans, want 3", id, n)
		}
	}
}
