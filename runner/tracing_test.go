package runner_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/tracing"
	"github.com/sluicehq/sluice/internal/tracing/tracingtest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// headerSink records the traceparent and tracestate headers of every
// message written to it ("" for none).
type headerSink struct {
	mu     sync.Mutex
	got    []string
	states []string
}

func (s *headerSink) Write(_ context.Context, batch []*stages.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range batch {
		s.got = append(s.got, m.Header.Get(stages.HeaderTraceParent))
		s.states = append(s.states, m.Header.Get(stages.HeaderTraceState))
	}
	return nil
}
func (s *headerSink) Close(context.Context) error { return nil }

func (s *headerSink) traceparents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// tracingEnv is a server, a registry with the built-in types and
// "headers" (writing to sink), and an OTLP receiver.
type tracingEnv struct {
	nc   *nats.Conn
	reg  *stages.Registry
	sink *headerSink
	recv *tracingtest.Receiver
}

func newTracingEnv(t *testing.T) *tracingEnv {
	t.Helper()
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(k, "")
	}
	e := &tracingEnv{sink: &headerSink{}, reg: builtin.NewRegistry(), recv: tracingtest.Start(t)}
	if err := e.reg.Register(stages.Spec{
		Name:    "headers",
		Summary: "records traceparent headers for the test",
		NewSink: func(stages.Params, stages.Info) (stages.Sink, error) { return e.sink, nil },
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Register(stages.Spec{
		Name:         "fail_one",
		Summary:      "fails record {\"n\": 1} for good, passes the others",
		NewTransform: func(stages.Params, stages.Info) (stages.Transform, error) { return failOne{}, nil },
	}); err != nil {
		t.Fatal(err)
	}
	e.nc = natstest.Connect(t, natstest.Server(t))
	return e
}

// failOne fails record {"n": 1} with a permanent error.
type failOne struct{}

func (failOne) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	if rec["n"] == int64(1) {
		return out, stages.Permanent(errors.New("one is refused"))
	}
	return append(out, in), nil
}
func (failOne) Close(context.Context) error { return nil }

// provider starts a tracer provider exporting to the receiver.
func (e *tracingEnv) provider(t *testing.T, ratio float64) *tracing.Provider {
	t.Helper()
	p, err := tracing.Start(context.Background(), tracing.Config{Endpoint: e.recv.Endpoint(), SampleRatio: ratio})
	if err != nil || p == nil {
		t.Fatalf("tracing.Start = %v, %v", p, err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

func (e *tracingEnv) parse(t *testing.T, yaml string) *pipeline.Pipeline {
	t.Helper()
	p, err := pipeline.Parse("traced.yaml", []byte(yaml), pipeline.Options{Registry: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// flush exports what p holds and returns every span the receiver got.
func (e *tracingEnv) flush(t *testing.T, p *tracing.Provider) []tracingtest.Span {
	t.Helper()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e.recv.Spans()
}

const threeStages = `
name: traced
stages:
  - {name: gen, source: generate, with: {count: 5, template: '{"n": seq}'}}
  - {name: double, transform: map, with: {expr: '{"n": n * 2}'}}
  - {name: out, sink: headers}
`

// byName returns the spans of one trace by name; it fails on a name seen
// twice.
func byName(t *testing.T, spans []tracingtest.Span) map[string]tracingtest.Span {
	t.Helper()
	m := make(map[string]tracingtest.Span, len(spans))
	for _, s := range spans {
		if _, dup := m[s.Name]; dup {
			t.Fatalf("span %q twice in trace %s", s.Name, s.TraceID)
		}
		m[s.Name] = s
	}
	return m
}

// groupTraces groups spans by trace ID.
func groupTraces(spans []tracingtest.Span) map[string][]tracingtest.Span {
	m := make(map[string][]tracingtest.Span)
	for _, s := range spans {
		m[s.TraceID] = append(m[s.TraceID], s)
	}
	return m
}

// TestTracingSpansPerRecord: with every record sampled, each record of a
// three-stage pipeline is one trace at the receiver: a source span (the
// root), the transform's span its child, the sink's span the
// transform's child, and the sink sees the transform span's context.
func TestTracingSpansPerRecord(t *testing.T) {
	e := newTracingEnv(t)
	tp := e.provider(t, 1)
	p := e.parse(t, threeStages)
	if _, err := runner.Run(context.Background(), e.nc, p, runner.Options{Registry: e.reg, Tracer: tp.TracerProvider()}); err != nil {
		t.Fatal(err)
	}
	spans := e.flush(t, tp)
	traces := groupTraces(spans)
	if len(spans) != 15 || len(traces) != 5 {
		t.Fatalf("%d spans in %d traces, want 15 in 5: %+v", len(spans), len(traces), spans)
	}
	atSink := make(map[string]bool)
	for _, tp := range e.sink.traceparents() {
		atSink[tp] = true
	}
	for id, tr := range traces {
		s := byName(t, tr)
		src, tf, snk := s["source gen"], s["transform double"], s["sink out"]
		if src.SpanID == "" || tf.SpanID == "" || snk.SpanID == "" {
			t.Fatalf("trace %s lacks a stage's span: %+v", id, tr)
		}
		if src.ParentSpanID != "" || tf.ParentSpanID != src.SpanID || snk.ParentSpanID != tf.SpanID {
			t.Errorf("trace %s: parents source %q, transform %q (want %q), sink %q (want %q)", id, src.ParentSpanID, tf.ParentSpanID, src.SpanID, snk.ParentSpanID, tf.SpanID)
		}
		if src.Kind != "SPAN_KIND_PRODUCER" || tf.Kind != "SPAN_KIND_CONSUMER" || snk.Kind != "SPAN_KIND_CONSUMER" {
			t.Errorf("trace %s: kinds %s, %s, %s", id, src.Kind, tf.Kind, snk.Kind)
		}
		for _, sp := range tr {
			if sp.Attributes["sluice.pipeline"] != "traced" || sp.Attributes["sluice.run"] != "1" || sp.Resource["service.name"] != "sluice" || sp.StatusError {
				t.Errorf("span %s: attributes %v, resource %v, error %v", sp.Name, sp.Attributes, sp.Resource, sp.StatusError)
			}
		}
		if tf.Attributes["sluice.stage"] != "double" || tf.Attributes["sluice.stage.type"] != "map" || tf.Attributes["sluice.outputs"] != "1" {
			t.Errorf("transform span attributes %v", tf.Attributes)
		}
		if want := "00-" + id + "-" + tf.SpanID + "-01"; !atSink[want] {
			t.Errorf("the sink saw no record with traceparent %s (it saw %v)", want, e.sink.traceparents())
		}
	}
}

// TestTracingFailedRecord: a record a transform refuses has an error
// span there, and its trace ends: it goes to the dead-letter stream.
func TestTracingFailedRecord(t *testing.T) {
	e := newTracingEnv(t)
	tp := e.provider(t, 1)
	p := e.parse(t, `
name: traced
stages:
  - {name: gen, source: generate, with: {count: 3, template: '{"n": seq}'}}
  - {name: double, transform: fail_one}
  - {name: out, sink: headers}
`)
	if _, err := runner.Run(context.Background(), e.nc, p, runner.Options{Registry: e.reg, Tracer: tp.TracerProvider()}); err != nil {
		t.Fatal(err)
	}
	traces := groupTraces(e.flush(t, tp))
	failed := 0
	for id, tr := range traces {
		s := byName(t, tr)
		if tf := s["transform double"]; tf.StatusError {
			failed++
			if !strings.Contains(tf.StatusMessage, "one is refused") || len(tr) != 2 {
				t.Errorf("failed trace %s: %+v", id, tr)
			}
		} else if len(tr) != 3 {
			t.Errorf("trace %s: %+v", id, tr)
		}
	}
	if len(traces) != 3 || failed != 1 {
		t.Fatalf("%d traces, %d failed; want 3, 1", len(traces), failed)
	}
}

// TestTracingNoHeader: with tracing off, or on with nothing sampled, no
// record gets a traceparent and no span is exported.
func TestTracingNoHeader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tracer bool
	}{
		{"off", false},
		{"ratio 0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTracingEnv(t)
			opts := runner.Options{Registry: e.reg}
			var tp *tracing.Provider
			if tc.tracer {
				tp = e.provider(t, 0)
				opts.Tracer = tp.TracerProvider()
			}
			if _, err := runner.Run(context.Background(), e.nc, e.parse(t, threeStages), opts); err != nil {
				t.Fatal(err)
			}
			got := e.sink.traceparents()
			if len(got) != 5 {
				t.Fatalf("the sink got %d records, want 5", len(got))
			}
			for _, h := range got {
				if h != "" {
					t.Fatalf("a record with traceparent %q", h)
				}
			}
			if tp != nil {
				if spans := e.flush(t, tp); len(spans) != 0 {
					t.Fatalf("%d spans exported: %+v", len(spans), spans)
				}
			}
		})
	}
}

// Incoming trace contexts, one sampled and one not. With a sample ratio
// of 0, the sampled one is still continued: its parent decided.
const (
	incomingTrace   = "0af7651916cd43dd8448eb211c80319c"
	incomingSpan    = "b7ad6b7169203331"
	incomingSampled = "00-" + incomingTrace + "-" + incomingSpan + "-01"
	incomingDropped = "00-11111111111111111111111111111111-2222222222222222-00"
)

// checkContinued checks that spans are one trace, incomingTrace, of three
// spans whose source span is the child of incomingSpan.
func checkContinued(t *testing.T, spans []tracingtest.Span, source string) {
	t.Helper()
	traces := groupTraces(spans)
	if len(spans) != 3 || len(traces) != 1 || len(traces[incomingTrace]) != 3 {
		t.Fatalf("spans %+v: want 3 of trace %s", spans, incomingTrace)
	}
	s := byName(t, spans)
	if got := s["source "+source].ParentSpanID; got != incomingSpan {
		t.Fatalf("source span's parent %q, want %q", got, incomingSpan)
	}
	if s["sink out"].ParentSpanID != s["transform double"].SpanID {
		t.Fatalf("sink span's parent is not the transform's span: %+v", spans)
	}
}

// TestTracingContinuesJetStream: a record read from the jetstream source
// keeps the traceparent it carries; a sampled one continues its trace, an
// unsampled one makes no span and reaches the sink as it came.
func TestTracingContinuesJetStream(t *testing.T) {
	e := newTracingEnv(t)
	up := natstest.Server(t)
	js, err := jetstream.New(natstest.Connect(t, up))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "UP", Subjects: []string{"up.>"}}); err != nil {
		t.Fatal(err)
	}
	for i, tp := range []string{incomingSampled, incomingDropped} {
		msg := nats.NewMsg("up.x")
		msg.Data = []byte(`{"n": ` + string(rune('1'+i)) + `}`)
		msg.Header.Set(stages.HeaderTraceParent, tp)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	p := e.parse(t, `
name: traced
stages:
  - {name: in, source: jetstream, with: {stream: UP, durable: sluice, url: '`+up.ClientURL()+`'}}
  - {name: double, transform: map, with: {expr: '{"n": n * 2}'}}
  - {name: out, sink: headers}
`)
	tp := e.provider(t, 0)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := runner.Run(runCtx, e.nc, p, runner.Options{Registry: e.reg, Tracer: tp.TracerProvider(), StopTimeout: 10 * time.Second})
		done <- err
	}()
	natstest.WaitFor(t, time.Minute, "both records at the sink", func() bool { return len(e.sink.traceparents()) == 2 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	spans := e.flush(t, tp)
	checkContinued(t, spans, "in")
	got := strings.Join(e.sink.traceparents(), " ")
	if !strings.Contains(got, incomingDropped) || !strings.Contains(got, "00-"+incomingTrace+"-") {
		t.Fatalf("traceparents at the sink: %s", got)
	}
}

// endContinued waits for the one record the test sent to reach the sink,
// stops the run (stop, then its error on done) and checks that the
// record's trace continued the incoming one from source "in", its
// tracestate ("vendor=x") included.
func (e *tracingEnv) endContinued(t *testing.T, tp *tracing.Provider, stop func(), done <-chan error) {
	t.Helper()
	natstest.WaitFor(t, time.Minute, "the record at the sink", func() bool { return len(e.sink.traceparents()) == 1 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkContinued(t, e.flush(t, tp), "in")
	e.sink.mu.Lock()
	defer e.sink.mu.Unlock()
	if e.sink.states[0] != "vendor=x" {
		t.Fatalf("tracestate at the sink %q, want the request's", e.sink.states[0])
	}
}

// TestTracingContinuesNATS: a record read from the nats source (core
// NATS, a request) keeps the traceparent it carries and continues its
// trace.
func TestTracingContinuesNATS(t *testing.T) {
	e := newTracingEnv(t)
	up := natstest.Server(t)
	client := natstest.Connect(t, up)
	p := e.parse(t, `
name: traced
stages:
  - {name: in, source: nats, with: {subject: 'in.>', url: '`+up.ClientURL()+`'}}
  - {name: double, transform: map, with: {expr: '{"n": n * 2}'}}
  - {name: out, sink: headers}
`)
	tp := e.provider(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := runner.Run(runCtx, e.nc, p, runner.Options{Registry: e.reg, Tracer: tp.TracerProvider(), StopTimeout: 10 * time.Second})
		done <- err
	}()
	// A request: answered once the record is stored. Until the source
	// has subscribed, there is no responder.
	msg := nats.NewMsg("in.x")
	msg.Data = []byte(`{"n": 1}`)
	msg.Header.Set(stages.HeaderTraceParent, incomingSampled)
	msg.Header.Set(stages.HeaderTraceState, "vendor=x")
	var err error
	natstest.WaitFor(t, time.Minute, "the source to answer", func() bool {
		_, err = client.RequestMsgWithContext(ctx, msg)
		return !errors.Is(err, nats.ErrNoResponders)
	})
	if err != nil {
		stop()
		<-done
		t.Fatal(err)
	}
	e.endContinued(t, tp, stop, done)
}

// TestTracingContinuesHTTP: the http source continues the trace of a
// request's traceparent header.
func TestTracingContinuesHTTP(t *testing.T) {
	e := newTracingEnv(t)
	addr := freeAddr(t)
	p := e.parse(t, `
name: traced
stages:
  - {name: in, source: http, with: {listen: '`+addr+`', path: /events}}
  - {name: double, transform: map, with: {expr: '{"n": n * 2}'}}
  - {name: out, sink: headers}
`)
	tp := e.provider(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := runner.Run(runCtx, e.nc, p, runner.Options{Registry: e.reg, Tracer: tp.TracerProvider(), StopTimeout: 10 * time.Second})
		done <- err
	}()
	client := &http.Client{Timeout: time.Minute}
	defer client.CloseIdleConnections()
	if err := waitHTTPReady(ctx, client, "http://"+addr+"/healthz"); err != nil {
		stop()
		<-done
		t.Fatal(err)
	}
	status, body, err := httpCall(ctx, client, http.MethodPost, "http://"+addr+"/events", `{"n": 1}`, map[string]string{"traceparent": incomingSampled, "tracestate": "vendor=x"})
	if err != nil || status != http.StatusAccepted {
		stop()
		<-done
		t.Fatalf("post: %d %s %v", status, body, err)
	}
	e.endContinued(t, tp, stop, done)
}

// BenchmarkTracingPipeline runs b.N generated records through
// generate → map → discard on a real nats-server with tracing off, on
// with the default ratio (0.01) and on with every record traced
// (exported to an in-process receiver), and reports msgs/s of the whole
// run.
//
//	go test ./runner -run XXX -bench TracingPipeline -benchtime 100000x
func BenchmarkTracingPipeline(b *testing.B) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"} {
		b.Setenv(k, "")
	}
	for _, bc := range []struct {
		name  string
		on    bool
		ratio float64
	}{
		{"off", false, 0},
		{"ratio-0.01", true, 0.01},
		{"ratio-1", true, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			nc := natstest.Connect(b, natstest.Server(b))
			reg := builtin.NewRegistry()
			p, err := pipeline.Parse("bench.yaml", []byte(`
name: bench
settings: {storage: memory}
stages:
  - {name: gen, source: generate, with: {count: `+strconv.Itoa(b.N)+`, template: '{"id": seq, "note": "a record of some size for the benchmark"}'}}
  - {name: m1, transform: map, with: {expr: '{"id": id * 2, "note": note}'}}
  - {name: out, sink: discard}
`), pipeline.Options{Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			opts := runner.Options{Registry: reg}
			if bc.on {
				recv := tracingtest.Start(b)
				tp, err := tracing.Start(context.Background(), tracing.Config{Endpoint: recv.Endpoint(), SampleRatio: bc.ratio})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				opts.Tracer = tp.TracerProvider()
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
