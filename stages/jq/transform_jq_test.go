package jq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestJQ(t *testing.T) {
	hdr := stages.Header{stages.HeaderKey: {"k1"}, "X-Src": {"web"}}
	q := func(query string) map[string]any { return map[string]any{"query": query} }
	stagetest.RunTransformCases(t, "jq", []stagetest.TransformCase{
		{Name: "field", Raw: q(`{id, total: (.price * .qty)}`), In: `{"id":7,"price":1.5,"qty":4,"x":null}`, Header: hdr, Want: []string{`{"id":7,"total":6}`}},
		{Name: "identity", Raw: q(`.`), In: `{"b":[1,{"c":"<d>"}],"a":null}`, Want: []string{`{"a":null,"b":[1,{"c":"<d>"}]}`}},
		{Name: "split", Raw: q(`.order as $o | .items[] | {order: $o, sku}`), In: `{"order":1,"items":[{"sku":"a"},{"sku":"b"}]}`, Header: hdr,
			Want: []string{`{"order":1,"sku":"a"}`, `{"order":1,"sku":"b"}`}},
		{Name: "no output filters", Raw: q(`select(.n > 1)`), In: `{"n":1}`, Want: nil},
		{Name: "select keeps", Raw: q(`select(.n > 1)`), In: `{"n":2}`, Want: []string{`{"n":2}`}},
		{Name: "empty", Raw: q(`empty`), In: `{}`, Want: nil},
		{Name: "big integers stay exact", Raw: q(`{n, m: (.n + 1), neg: (0 - .n)}`), In: `{"n":9007199254740993}`,
			Want: []string{`{"m":9007199254740994,"n":9007199254740993,"neg":-9007199254740993}`}},
		{Name: "past int64", Raw: q(`.n * 1000`), In: `{"n":9223372036854775807}`, Want: []string{`9223372036854775807000`}},
		{Name: "floats", Raw: q(`[.x / 2, .x / 3 * 3, 1e21, 0.1 + 0.2]`), In: `{"x":3}`, Want: []string{`[1.5,3,1e+21,0.30000000000000004]`}},
		{Name: "nan and infinities", Raw: q(`[nan, infinite, -infinite]`), In: `{}`, Want: []string{`[null,1.7976931348623157e+308,-1.7976931348623157e+308]`}},
		{Name: "any JSON value", Raw: q(`.[] | . * 2`), In: `[1,2.5]`, Want: []string{`2`, `5`}},
		{Name: "metadata", Raw: q(`{key: $msg.key, src: $msg.headers["X-Src"], t: $msg.event_time, seq: $msg.sequence}`), In: `{}`, Header: hdr,
			Want: []string{`{"key":"k1","seq":0,"src":"web","t":null}`}},
		{Name: "halt ends outputs", Raw: q(`1, halt, 2`), In: `{}`, Want: []string{`1`}},
		{Name: "no environment", Raw: q(`$ENV | length`), In: `{}`, Want: []string{`0`}},
		{Name: "type error", Raw: q(`.a.b`), In: `{"a":1}`, WantErr: `jq: expected an object but got: number (1)`},
		{Name: "error function", Raw: q(`error("too big")`), In: `{}`, WantErr: `jq: error: too big`},
		{Name: "halt_error", Raw: q(`"stop\n" | halt_error`), In: `{}`, WantErr: `jq: halt error: stop` + "\n"},
		{Name: "error after outputs", Raw: q(`1, error("late")`), In: `{}`, WantErr: `jq: error: late`},
		{Name: "not json", Raw: q(`.`), In: `{"a":`, WantErr: "invalid JSON: unexpected end of JSON input (at byte 5)"},
	})
}

// A query's constants are not changed by the conversion of its outputs.
func TestJQConstants(t *testing.T) {
	tr := stagetest.NewTransform(t, "jq", map[string]any{"query": `{"a": [1, {"b": 2}], n: .n}`})
	for i, want := range []string{`{"a":[1,{"b":2}],"n":1}`, `{"a":[1,{"b":2}],"n":2}`} {
		out, err := tr.Process(context.Background(), stages.NewMessage([]byte(`{"n":`+string(rune('1'+i))+`}`)), nil)
		if err != nil || len(out) != 1 {
			t.Fatalf("record %d: %v, %v", i, out, err)
		}
		if got := stagetest.PayloadOf(t, out[0]); got != want {
			t.Fatalf("record %d: got %s, want %s", i, got, want)
		}
	}
}

func TestJQDerives(t *testing.T) {
	tr := stagetest.NewTransform(t, "jq", map[string]any{"query": `.[]`})
	in := stages.NewMessage([]byte(`[1,2]`))
	in.Header = stages.Header{"A": {"1"}}
	in.Meta.Sequence = 42
	out, err := tr.Process(context.Background(), in, nil)
	if err != nil || len(out) != 2 {
		t.Fatalf("got %v, %v", out, err)
	}
	out[0].Header.Set("A", "changed")
	if in.Header.Get("A") != "1" || out[1].Header.Get("A") != "1" || out[1].Meta.Sequence != 42 {
		t.Fatal("outputs share headers or lost the metadata")
	}
}

func TestJQTimeout(t *testing.T) {
	tr := stagetest.NewTransform(t, "jq", map[string]any{"query": `last(range(infinite))`, "timeout": "20ms"})
	_, err := tr.Process(context.Background(), stages.NewMessage([]byte(`{}`)), nil)
	if !stages.IsPermanent(err) || err.Error() != "jq: query ran longer than timeout 20ms" {
		t.Fatalf("got %v, want a permanent timeout", err)
	}

	// The run stopping is not the record's fault: the error is retried.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = tr.Process(ctx, stages.NewMessage([]byte(`{}`)), nil)
	if stages.IsPermanent(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// With timeout 0 a query runs as long as it takes.
func TestJQNoTimeout(t *testing.T) {
	tr := stagetest.NewTransform(t, "jq", map[string]any{"query": `last(range(100000))`, "timeout": "0s"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := tr.Process(ctx, stages.NewMessage([]byte(`{}`)), nil)
	if err != nil || len(out) != 1 || stagetest.PayloadOf(t, out[0]) != "99999" {
		t.Fatalf("got %v, %v", out, err)
	}
}

func TestJQParams(t *testing.T) {
	stagetest.CheckParamErrors(t, "jq", []stagetest.ParamCase{
		{Raw: map[string]any{}, Param: "query", Msg: `missing required parameter "query"`},
		{Raw: map[string]any{"query": " "}, Param: "query", Msg: "query: must not be empty"},
		{Raw: map[string]any{"query": ".a |"}, Param: "query", Msg: "query: jq query does not parse at byte 4: unexpected EOF"},
		{Raw: map[string]any{"query": "{a"}, Param: "query", Msg: `query: jq query does not parse at byte 2: unexpected EOF`},
		{Raw: map[string]any{"query": "nope(1)"}, Param: "query", Msg: "query: jq query does not compile: function not defined: nope/1"},
		{Raw: map[string]any{"query": "$x"}, Param: "query", Msg: "query: jq query does not compile: variable not defined: $x"},
		{Raw: map[string]any{"query": ".", "timeout": "soon"}, Param: "timeout", Msg: "timeout"},
	})
}
