package runner

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/tracing"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// BenchmarkTraceHop measures what tracing adds to one record at one
// stage: a transform's begin and end around its output (the record's
// hop to the next stage), and a source's span, with tracing off, on but
// the record not sampled, and on and sampled (exported to an HTTP server
// in the process that discards what it is sent: the exporter's encoding
// and posting count, a receiver's decoding does not).
//
//	go test ./runner -run XXX -bench TraceHop -benchmem
func BenchmarkTraceHop(b *testing.B) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"} {
		b.Setenv(k, "")
	}
	const (
		sampled    = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		notSampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	)
	for _, bc := range []struct {
		name        string
		on          bool
		ratio       float64
		traceparent string
		source      bool
	}{
		{"transform/off", false, 0, sampled, false},
		{"transform/on-no-traceparent", true, 1, "", false},
		{"transform/on-not-sampled", true, 1, notSampled, false},
		{"transform/on-sampled", true, 1, sampled, false},
		{"source/off", false, 0, "", true},
		{"source/on-ratio-0", true, 0, "", true},
		{"source/on-ratio-0.01", true, 0.01, "", true},
		{"source/on-ratio-1", true, 1, "", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := &run{p: &pipeline.Pipeline{Name: "bench"}, id: 1}
			if bc.on {
				discard := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					_, _ = io.Copy(io.Discard, req.Body)
					w.Header().Set("Content-Type", "application/x-protobuf")
				}))
				b.Cleanup(discard.Close)
				tp, err := tracing.Start(context.Background(), tracing.Config{Endpoint: discard.URL, SampleRatio: bc.ratio})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				r.opts.Tracer = tp.TracerProvider()
			}
			role := stages.RoleTransform
			if bc.source {
				role = stages.RoleSource
			}
			t := newStageTrace(r, &pipeline.Stage{Name: "s", Type: "map", Role: role})
			h := nats.Header{stages.HeaderMsgID: []string{"bench/s/r1/1"}}
			if bc.traceparent != "" {
				h[stages.HeaderTraceParent] = []string{bc.traceparent}
			}
			m := stages.NewMessage([]byte(`{"n":1}`))
			m.Header = h
			outs := []*stages.Message{m}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if bc.source {
					delete(h, stages.HeaderTraceParent)
					t.source(h, "sluice.bench.s")
					continue
				}
				span := t.begin(m)
				t.end(span, outs, nil)
			}
		})
	}
}
