package jq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/itchyny/gojq"

	"github.com/sluicehq/sluice/stages"
)

// jqMsgVar is the variable under which a jq query sees a message's
// metadata, as msg in expressions.
const jqMsgVar = "$msg"

func jqSpec() stages.Spec {
	return stages.Spec{
		Name:      "jq",
		Stateless: true,
		Summary:   "Run a jq query on each record; each value it emits is a record",
		Doc: `Runs query (jq syntax, as implemented by gojq) on each record, the ` +
			`payload decoded as JSON (any JSON value, not only objects). Each value ` +
			`the query emits is one output record with the input's headers: no ` +
			`value filters the record (counted as filtered), several split it. ` +
			`$msg holds the metadata: $msg.subject, $msg.headers (name to first ` +
			`value), $msg.key, $msg.event_time (RFC 3339 text or null), $msg.stream, ` +
			`$msg.sequence, $msg.deliveries. $ENV is empty and input, inputs and ` +
			`modules are not available. Integers stay exact, big ones too; NaN ` +
			`becomes null and infinities the largest finite numbers, as in jq. ` +
			`halt ends the outputs of a record without an error.

The query is compiled when the pipeline is validated. A payload that is ` +
			`not JSON, a jq error on a record (error(...), halt_error, a type ` +
			`error; its message, as jq's, shows at most 30 bytes of the value ` +
			`involved) or a query that runs longer than timeout sends the message ` +
			`to the dead-letter stream.

Example:

    - name: lines
      transform: jq
      with:
        query: '.order as $o | $o.items[] | {order: $o.id, sku, qty}'`,
		Params: []stages.Param{
			{Name: "query", Type: stages.TypeString, Required: true, Doc: "The jq query run on each record."},
			{Name: "timeout", Type: stages.TypeDuration, Default: 10 * time.Second, Doc: "Longest time the query may run on one record; 0 is no limit."},
		},
		Check:        checkJQ,
		NewTransform: newJQTransform,
	}
}

func checkJQ(p stages.Params) error {
	_, err := compileJQ(p.String("query"))
	return err
}

// compileJQ compiles a jq query that sees the metadata as $msg.
func compileJQ(src string) (*gojq.Code, error) {
	if strings.TrimSpace(src) == "" {
		return nil, stages.ParamErrorf("query", "must not be empty")
	}
	q, err := gojq.Parse(src)
	if err != nil {
		var pe *gojq.ParseError
		if errors.As(err, &pe) {
			return nil, stages.ParamErrorf("query", "jq query does not parse at byte %d: %s", pe.Offset, err)
		}
		return nil, stages.ParamErrorf("query", "jq query does not parse: %s", err)
	}
	code, err := gojq.Compile(q, gojq.WithVariables([]string{jqMsgVar}))
	if err != nil {
		return nil, stages.ParamErrorf("query", "jq query does not compile: %s", err)
	}
	return code, nil
}

// jqTransform runs a compiled jq query on each record.
type jqTransform struct {
	code    *gojq.Code
	timeout time.Duration
	usesMsg bool  // the query mentions $msg: build it for each record
	vals    []any // the values of one record, reused
}

var _ stages.Transform = (*jqTransform)(nil)

func newJQTransform(p stages.Params, _ stages.Info) (stages.Transform, error) {
	code, err := compileJQ(p.String("query"))
	if err != nil {
		return nil, err
	}
	return &jqTransform{
		code:    code,
		timeout: p.Duration("timeout"),
		usesMsg: strings.Contains(p.String("query"), jqMsgVar),
	}, nil
}

func (t *jqTransform) Process(ctx context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	v, err := in.Value()
	if err != nil {
		return out, err
	}
	var msg any
	if t.usesMsg {
		msg = jqMsg(in)
	}
	qctx := ctx
	if t.timeout > 0 {
		var cancel context.CancelFunc
		qctx, cancel = context.WithTimeout(ctx, t.timeout)
		defer cancel()
	}
	t.vals = t.vals[:0]
	iter := t.code.RunWithContext(qctx, toJQ(v), msg)
	for {
		r, ok := iter.Next()
		if !ok {
			break
		}
		if err, isErr := r.(error); isErr {
			var halt *gojq.HaltError
			if errors.As(err, &halt) && halt.Value() == nil {
				break // halt: no more outputs, no error
			}
			clear(t.vals)
			switch {
			case ctx.Err() != nil:
				return out, ctx.Err() // stopping: retried later
			case errors.Is(err, context.DeadlineExceeded):
				return out, stages.Permanent(fmt.Errorf("jq: query ran longer than timeout %s", t.timeout))
			}
			return out, stages.Permanent(fmt.Errorf("jq: %w", err))
		}
		t.vals = append(t.vals, fromJQ(r))
	}
	if len(t.vals) == 1 {
		// One output: the input itself carries it.
		in.SetValue(t.vals[0])
		out = append(out, in)
	} else {
		for _, r := range t.vals {
			out = append(out, in.Derive(r))
		}
	}
	clear(t.vals)
	return out, nil
}

func (t *jqTransform) Close(context.Context) error { return nil }

// jqMsg builds the $msg variable of a query, of the types gojq takes.
func jqMsg(m *stages.Message) map[string]any {
	headers := make(map[string]any, len(m.Header))
	for k, vs := range m.Header {
		if len(vs) > 0 {
			headers[k] = vs[0]
		}
	}
	var eventTime any
	if s := m.Header.Get(stages.HeaderEventTime); s != "" {
		eventTime = s
	}
	return map[string]any{
		"subject":    m.Meta.Subject,
		"headers":    headers,
		"key":        m.Header.Get(stages.HeaderKey),
		"event_time": eventTime,
		"stream":     m.Meta.Stream,
		"sequence":   uint64ToJQ(m.Meta.Sequence),
		"deliveries": uint64ToJQ(m.Meta.Deliveries),
	}
}

func uint64ToJQ(n uint64) any {
	if n <= math.MaxInt {
		return int(n)
	}
	return new(big.Int).SetUint64(n)
}

// toJQ converts a decoded record to the types gojq takes: int64 becomes
// int (or *big.Int where int is narrower). It changes maps and slices in
// place: the record belongs to the message being processed, which is not
// passed on as it is.
func toJQ(v any) any {
	switch x := v.(type) {
	case int64:
		if int64(int(x)) == x {
			return int(x)
		}
		return big.NewInt(x)
	case map[string]any:
		for k, e := range x {
			switch e.(type) {
			case int64, map[string]any, []any:
				x[k] = toJQ(e)
			}
		}
	case []any:
		for i, e := range x {
			x[i] = toJQ(e)
		}
	}
	return v
}

// fromJQ converts a value gojq emitted to a record as the decoder gives it
// (int64, float64), into new maps and slices: gojq may share its values
// with the compiled query (constants), which must not change. NaN becomes
// null and infinities the largest finite numbers, as jq prints them.
func fromJQ(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case float64:
		switch {
		case math.IsNaN(x):
			return nil
		case math.IsInf(x, 1):
			return math.MaxFloat64
		case math.IsInf(x, -1):
			return -math.MaxFloat64
		}
		return x
	case *big.Int:
		if x.IsInt64() {
			return x.Int64()
		}
		return new(big.Int).Set(x) // encodes as its exact digits
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = fromJQ(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = fromJQ(e)
		}
		return s
	}
	return v
}
