package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/bytedance/sonic"
	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// Header holds message headers, as on NATS: keys are case-sensitive.
type Header = nats.Header

// Reserved header names. The runner sets them; stages read them.
const (
	HeaderMsgID     = "Nats-Msg-Id"
	HeaderKey       = "Sluice-Key"
	HeaderEventTime = "Sluice-Event-Time"
	HeaderOrigin    = "Sluice-Origin"
	// HeaderRedelivered is set, to "1", on a record that may be a copy of
	// one published before: it derives from an input delivered more than
	// once, or from a source record read again after a resume. A sink
	// that deduplicates looks such a record up in all it wrote in the run;
	// a record without it cannot be a copy. See [Message.MaybeCopy].
	HeaderRedelivered = "Sluice-Redelivered"
	HeaderError       = "Sluice-Error"
	HeaderStage       = "Sluice-Stage"
	HeaderDeliveries  = "Sluice-Deliveries"
	// HeaderSubject and HeaderInputID keep, on a dead letter, the subject
	// and Nats-Msg-Id its input had, so that it can be replayed.
	HeaderSubject = "Sluice-Subject"
	HeaderInputID = "Sluice-Input-Id"
	// HeaderRun gives, on a dead letter and on its replay, the number of
	// the run the record belongs to: a replay is processed in that run.
	HeaderRun = "Sluice-Run"
	// HeaderTruncated is set on a dead letter whose payload was too large
	// for NATS and was cut: it gives the full length in bytes.
	HeaderTruncated = "Sluice-Truncated"
	// HeaderObject names, on such a dead letter, the object that holds
	// the whole payload: "BUCKET/NAME" in the pipeline's object store.
	HeaderObject = "Sluice-Object"
	// HeaderWatermark carries, in a pipeline with a stage that acts on
	// watermarks, the watermark of the source or worker that published
	// the message: "CHANNEL=UNIX_MILLIS", with ";idle" when it has gone
	// quiet.
	HeaderWatermark = "Sluice-Watermark"
	// HeaderControl marks a message that carries no record: "watermark"
	// (a watermark tick) or "end" (every source has ended).
	HeaderControl = "Sluice-Control"
	// HeaderReadTime carries, when the process that ran the source has a
	// metrics observer (runner.Options.Observer), when the source read the
	// record: Unix nanoseconds in decimal. Transforms pass it on to their
	// outputs; a sink's worker measures the end-to-end latency from it.
	// "sluice dlq replay" drops it: a replay is a new read.
	HeaderReadTime = "Sluice-Read-Time"
	// HeaderTraceParent and HeaderTraceState carry a record's W3C trace
	// context (lower case, as the W3C spec writes them). A source keeps
	// what its records bring; with tracing on, each stage that makes a
	// span for a record sets them on its outputs to that span's context.
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// Meta is where a message came from. The runner fills it for messages read
// from a stage stream; a source leaves it zero.
type Meta struct {
	Subject    string    // the subject the message was published on
	Stream     string    // the stream it was read from
	Sequence   uint64    // its sequence number in that stream
	Deliveries uint64    // 1 on the first delivery
	Published  time.Time // when the stream stored it
	// Partition is the partition of the input it was read from, for a
	// stage that reads a partitioned stage; Watermark is, for a
	// [Windowed] transform, the watermark of that partition before the
	// message (zero when none is known yet).
	Partition int
	Watermark time.Time
}

// Message is a payload of bytes plus headers. Records are JSON values
// (usually objects); the payload is decoded only when a stage asks for the
// value, and re-encoded only when a stage changed it. A Message is not safe
// for concurrent use.
type Message struct {
	Header Header
	Meta   Meta
	// Route, set by a transform on an output, sends it on that route of
	// the stage ("stage.route" in YAML) instead of its default output. The
	// type's [Spec.Routes] must list it.
	Route string

	ack func(error)

	payload  []byte
	value    any
	hasValue bool // value is decoded (or set) and current
	stale    bool // payload is out of date with value
}

// NewMessage returns a message carrying payload. The message owns payload.
func NewMessage(payload []byte) *Message {
	return &Message{payload: payload}
}

// NewValueMessage returns a message whose record is v; the payload is its
// JSON encoding, made when first needed.
func NewValueMessage(v any) *Message {
	return &Message{value: v, hasValue: true, stale: true}
}

// Payload returns the message bytes, encoding the value first if a stage set
// or changed it. An encoding error is permanent.
func (m *Message) Payload() ([]byte, error) {
	if m.stale {
		b, err := EncodeJSON(m.value)
		if err != nil {
			return nil, Permanent(fmt.Errorf("encode record: %w", err))
		}
		m.payload, m.stale = b, false
	}
	return m.payload, nil
}

// SetPayload replaces the payload; the value is decoded again when asked for.
func (m *Message) SetPayload(b []byte) {
	m.payload, m.value, m.hasValue, m.stale = b, nil, false, false
}

// SetPayloadValue replaces the payload with b and the value with v, which
// must be what [DecodeJSON] gives for b: the message keeps both, so that
// neither is decoded nor encoded again. For a stage that decoded bytes it
// received itself.
func (m *Message) SetPayloadValue(b []byte, v any) {
	m.payload, m.value, m.hasValue, m.stale = b, v, true, false
}

// NeedsEncoding reports whether a stage set or changed the value since the
// payload was made: [Message.Payload] then encodes the value anew.
func (m *Message) NeedsEncoding() bool { return m.stale }

// Value returns the payload decoded as JSON. Integers that fit in an int64
// decode as int64, other numbers as float64, objects as map[string]any and
// arrays as []any. A payload that is not JSON gives a permanent error.
func (m *Message) Value() (any, error) {
	if !m.hasValue {
		v, err := DecodeJSON(m.payload)
		if err != nil {
			return nil, Permanent(fmt.Errorf("invalid JSON: %w", err))
		}
		m.value, m.hasValue = v, true
	}
	return m.value, nil
}

// Record returns the payload as a JSON object. A payload that is not a JSON
// object gives a permanent error. Changes to the map are not seen in the
// payload until [Message.SetValue] is called with it.
func (m *Message) Record() (map[string]any, error) {
	v, err := m.Value()
	if err != nil {
		return nil, err
	}
	rec, ok := v.(map[string]any)
	if !ok {
		return nil, Permanent(fmt.Errorf("record is a JSON %s, not an object", errtext.JSONKind(v)))
	}
	return rec, nil
}

// SetValue replaces the record; the payload is re-encoded when asked for.
func (m *Message) SetValue(v any) {
	m.value, m.hasValue, m.stale = v, true, true
}

// OnAck sets the function that the runner calls, once, when the message a
// source returned from Read is safe in JetStream (err nil) or will not be
// stored: err then says why (the run stopped, or the record was
// dead-lettered or dropped, see [ErrDeadLettered]). A source that must tell
// its own upstream, such as an HTTP client waiting for an answer or a
// broker waiting for an acknowledgement, sets it. The function must not
// block for long: the runner calls it from its publishing loop.
func (m *Message) OnAck(f func(err error)) { m.ack = f }

// Ack reports the outcome of a message to the function [Message.OnAck]
// set, the first time it is called; later calls do nothing. The runner
// calls it.
func (m *Message) Ack(err error) {
	if f := m.ack; f != nil {
		m.ack = nil
		f(err)
	}
}

// MaybeCopy reports whether m may be a copy of a record delivered before:
// it was itself delivered more than once, or the runner marked it with
// [HeaderRedelivered].
func (m *Message) MaybeCopy() bool {
	return m.Meta.Deliveries > 1 || len(m.Header[HeaderRedelivered]) > 0
}

// Derive returns a new message with value v and a copy of m's headers and
// metadata, for a transform that makes several outputs from one input.
func (m *Message) Derive(v any) *Message {
	d := NewValueMessage(v)
	d.Meta = m.Meta
	if m.Header != nil {
		d.Header = make(Header, len(m.Header))
		for k, vs := range m.Header {
			d.Header[k] = vs
		}
	}
	return d
}

// codec is the JSON codec of records: integers decode as int64 when they
// fit (so IDs keep their digits), other numbers as float64; objects encode
// with sorted keys and without HTML escaping, as encoding/json does except
// for the escaping; control characters in strings and invalid \u escapes
// are errors.
var codec = sonic.Config{
	UseInt64:         true,
	SortMapKeys:      true,
	ValidateString:   true,
	UseUnicodeErrors: true,
}.Froze()

// MaxJSONDepth is how deeply arrays and objects may nest in a record: the
// codec refuses a value nested deeper (encoding/json would take up to
// 10000).
const MaxJSONDepth = 4095

// DecodeJSON decodes one JSON value the way [Message.Value] does: integers
// that fit in an int64 stay exact. A record that is not valid UTF-8 is an
// error, not silently mended. The error says what is wrong and at which
// byte, without quoting the input.
func DecodeJSON(b []byte) (any, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("record is not valid UTF-8 (at byte %d)", errtext.InvalidUTF8At(b))
	}
	var v any
	if err := codec.Unmarshal(b, &v); err != nil {
		return nil, explainDecode(b, json.Unmarshal(b, new(any)))
	}
	return v, nil
}

// EncodeJSON encodes v as compact JSON with sorted object keys, without
// HTML escaping and without a trailing newline, the way [Message.Payload]
// does.
func EncodeJSON(v any) ([]byte, error) {
	b, err := codec.Marshal(v)
	if err != nil {
		_, stdErr := json.Marshal(v)
		return nil, explain(stdErr)
	}
	return b, nil
}

// explainDecode says why the codec refused b, given what encoding/json
// made of it: the codec's own messages quote the input, which must not
// reach logs or headers, while encoding/json's never do. It names the
// offending byte where it is known.
func explainDecode(b []byte, stdErr error) error {
	var syntax *json.SyntaxError
	switch {
	case errors.As(stdErr, &syntax):
		return &JSONError{Reason: syntax.Error(), Offset: syntax.Offset}
	case stdErr != nil:
		return stdErr
	}
	if at := nestedTooDeepAt(b, MaxJSONDepth); at >= 0 {
		return &JSONError{Reason: fmt.Sprintf("nesting deeper than %d", MaxJSONDepth), Offset: int64(at)}
	}
	return errors.New("refused by the record codec") // what encoding/json accepts and the codec does not
}

// JSONError is what [DecodeJSON] returns for a record that is not valid
// JSON: what is wrong, worded without quoting the record, and where.
type JSONError struct {
	Reason string // such as "unexpected end of JSON input"
	Offset int64  // the byte offset in the record the problem was found at
}

func (e *JSONError) Error() string { return fmt.Sprintf("%s (at byte %d)", e.Reason, e.Offset) }

// nestedTooDeepAt returns the offset of the first bracket that opens an
// array or object nested deeper than max in the JSON text b, or -1.
func nestedTooDeepAt(b []byte, max int) int {
	depth, inString, escaped := 0, false, false
	for i, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			if depth++; depth > max {
				return i
			}
		case ']', '}':
			depth--
		}
	}
	return -1
}

// explain returns the error of encoding/json for a value the codec
// refused: the codec's own messages quote the input, which must not reach
// logs or headers, while encoding/json's never do.
func explain(stdErr error) error {
	if stdErr == nil { // encoding/json accepts what the codec refused
		return errors.New("refused by the record codec")
	}
	return stdErr
}
