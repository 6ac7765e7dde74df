package runner

import (
	"context"
	"strconv"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// tracerName is the instrumentation scope of the runner's spans.
const tracerName = "github.com/sluicehq/sluice/runner"

// Attribute keys of the runner's spans.
const (
	attrPipeline   = attribute.Key("sluice.pipeline")
	attrStage      = attribute.Key("sluice.stage")
	attrStageType  = attribute.Key("sluice.stage.type")
	attrRun        = attribute.Key("sluice.run")
	attrOutputs    = attribute.Key("sluice.outputs")
	attrMsgID      = attribute.Key("messaging.message.id")
	attrSubject    = attribute.Key("messaging.destination.name")
	attrStream     = attribute.Key("sluice.stream")
	attrSequence   = attribute.Key("sluice.stream.sequence")
	attrDeliveries = attribute.Key("sluice.deliveries")
)

// stageTrace makes the spans of one stage in one worker (or source loop):
// a span per record. A nil *stageTrace is tracing off: every method then
// returns at once, having made nothing.
//
// A source starts a span per record, a child of the trace context the
// record brings (such as a traceparent header given to the http source),
// else the root of a new trace that the sampler keeps or not; a kept
// span's context goes in the record's headers. A transform or sink
// starts a span per input that carries a sampled traceparent, its child;
// a transform's outputs carry the new span's context. An input without a
// traceparent, or with one not sampled, costs a map lookup: no span, and
// its headers are left as they are.
type stageTrace struct {
	tracer trace.Tracer
	name   string                  // the spans' name: "<role> <stage>"
	start  []trace.SpanStartOption // the span kind
	attrs  []attribute.KeyValue    // set on a span that records
	spans  []trace.Span            // a sink's: the spans of the inputs being written
}

// newStageTrace returns the tracing of stage st in run r: nil unless
// r.opts.Tracer is set.
func newStageTrace(r *run, st *pipeline.Stage) *stageTrace {
	tp := r.opts.Tracer
	if tp == nil {
		return nil
	}
	kind := trace.SpanKindConsumer
	if st.Role == stages.RoleSource {
		kind = trace.SpanKindProducer
	}
	return &stageTrace{
		tracer: tp.Tracer(tracerName),
		name:   st.Role.String() + " " + st.Name,
		start:  []trace.SpanStartOption{trace.WithSpanKind(kind)},
		attrs: []attribute.KeyValue{
			attrPipeline.String(r.p.Name),
			attrStage.String(st.Name),
			attrStageType.String(st.Type),
			attrRun.Int64(int64(r.id)),
		},
	}
}

// source makes the span of a record a source read, whose headers are h
// (not nil), published on subject, and puts the span's context in h if
// the span is sampled. The span marks the record's entry into the
// pipeline: it ends at once.
func (t *stageTrace) source(h nats.Header, subject string) {
	if t == nil {
		return
	}
	ctx := context.Background()
	if _, ok := h[stages.HeaderTraceParent]; ok {
		ctx = traceContext.Extract(ctx, headerCarrier(h))
	}
	_, span := t.tracer.Start(ctx, t.name, t.start...)
	if sc := span.SpanContext(); sc.IsSampled() {
		span.SetAttributes(t.attrs...)
		span.SetAttributes(attrSubject.String(subject), attrMsgID.String(firstValue(h, stages.HeaderMsgID)))
		setTraceContext(h, sc)
	}
	span.End()
}

// begin starts the span of input m of a transform or sink, if m carries a
// sampled trace context; else it returns nil.
func (t *stageTrace) begin(m *stages.Message) trace.Span {
	if t == nil {
		return nil
	}
	tp, ok := m.Header[stages.HeaderTraceParent]
	if !ok || len(tp) != 1 || !sampledFlag(tp[0]) {
		return nil
	}
	ctx := traceContext.Extract(context.Background(), headerCarrier(m.Header))
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil // a malformed traceparent
	}
	_, span := t.tracer.Start(ctx, t.name, t.start...)
	span.SetAttributes(t.attrs...)
	span.SetAttributes(
		attrMsgID.String(firstValue(m.Header, stages.HeaderMsgID)),
		attrStream.String(m.Meta.Stream),
		attrSequence.Int64(int64(m.Meta.Sequence)),
		attrDeliveries.Int64(int64(m.Meta.Deliveries)),
	)
	return span
}

// end ends span, which begin returned for an input of a transform: on
// success its outputs outs carry the span's context; err marks it
// failed. A nil span does nothing.
func (t *stageTrace) end(span trace.Span, outs []*stages.Message, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	} else {
		sc := span.SpanContext()
		for _, o := range outs {
			if o.Header == nil {
				o.Header = make(nats.Header, 2)
			}
			setTraceContext(o.Header, sc)
		}
		span.SetAttributes(attrOutputs.Int(len(outs)))
	}
	span.End()
}

// beginWrites starts the spans of a sink's inputs msgs, about to be
// written.
func (t *stageTrace) beginWrites(msgs []*stages.Message) {
	if t == nil {
		return
	}
	t.spans = t.spans[:0]
	for _, m := range msgs {
		t.spans = append(t.spans, t.begin(m))
	}
}

// endWrites ends the spans beginWrites started, errs holding the sink's
// final error for each input.
func (t *stageTrace) endWrites(errs []error) {
	if t == nil {
		return
	}
	for i, span := range t.spans {
		if span == nil {
			continue
		}
		if i < len(errs) && errs[i] != nil {
			span.SetStatus(codes.Error, errs[i].Error())
		}
		span.End()
	}
	clear(t.spans)
	t.spans = t.spans[:0]
}

// traceContext reads and writes the W3C traceparent and tracestate
// headers.
var traceContext propagation.TraceContext

// headerCarrier lets the propagator read message headers, by their exact
// (lower-case) names.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return firstValue(nats.Header(c), key) }
func (c headerCarrier) Set(key, value string) { c[key] = []string{value} }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// firstValue returns the first value of header key in h, "" if none.
func firstValue(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// setTraceContext puts span context sc in h as traceparent (version 00)
// and tracestate, removing a tracestate sc does not have.
func setTraceContext(h nats.Header, sc trace.SpanContext) {
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	buf := append(b[:0], "00-"...)
	buf = appendHex(buf, tid[:])
	buf = append(buf, '-')
	buf = appendHex(buf, sid[:])
	buf = append(buf, '-')
	buf = appendHex(buf, []byte{byte(sc.TraceFlags())})
	h[stages.HeaderTraceParent] = []string{string(buf)}
	if ts := sc.TraceState(); ts.Len() > 0 {
		h[stages.HeaderTraceState] = []string{ts.String()}
	} else {
		delete(h, stages.HeaderTraceState)
	}
}

// appendHex appends b in lower-case hex.
func appendHex(dst, b []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range b {
		dst = append(dst, digits[c>>4], digits[c&0xf])
	}
	return dst
}

// sampledFlag reports whether traceparent value v says sampled: its
// flags (the fourth field, at bytes 53 and 54) have bit 0 set. It does
// not check the rest: the propagator does.
func sampledFlag(v string) bool {
	if len(v) < 55 || v[52] != '-' {
		return false
	}
	f, err := strconv.ParseUint(v[53:55], 16, 8)
	return err == nil && f&1 == 1
}
