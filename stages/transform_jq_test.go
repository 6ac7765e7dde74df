package stages

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestJQ(t *testing.T) {
	hdr := Header{HeaderKey: {"k1"}, "X-Src": {"web"}}
	q := func(query string) map[string]any { return map[string]any{"query": query} }
	runTransformCases(t, "jq", []transformCase{
		{name: "field", raw: q(`{id, total: (.price * .qty)}`), in: `{"id":7,"price":1.5,"qty":4,"x":null}`, header: hdr, want: []string{`{"id":7,"total":6}`}},
		{name: "identity", raw: q(`.`), in: `{"b":[1,{"c":"<d>"}],"a":null}`, want: []string{`{"a":null,"b":[1,{"c":"<d>"}]}`}},
		{name: "split", raw: q(`.order as $o | .items[] | {order: $o, sku}`), in: `{"order":1,"items":[{"sku":"a"},{"sku":"b"}]}`, header: hdr,
			want: []string{`{"order":1,"sku":"a"}`, `{"order":1,"sku":"b"}`}},
		{name: "no output filters", raw: q(`select(.n > 1)`), in: `{"n":1}`, want: nil},
		{name: "select keeps", raw: q(`select(.n > 1)`), in: `{"n":2}`, want: []string{`{"n":2}`}},
		{name: "empty", raw: q(`empty`), in: `{}`, want: nil},
		{name: "big integers stay exact", raw: q(`{n, m: (.n + 1), neg: (0 - .n)}`), in: `{"n":9007199254740993}`,
			want: []string{`{"m":9007199254740994,"n":9007199254740993,"neg":-9007199254740993}`}},
		{name: "past int64", raw: q(`.n * 1000`), in: `{"n":9223372036854775807}`, want: []string{`9223372036854775807000`}},
		{name: "floats", raw: q(`[.x / 2, .x / 3 * 3, 1e21, 0.1 + 0.2]`), in: `{"x":3}`, want: []string{`[1.5,3,1e+21,0.30000000000000004]`}},
		{name: "nan and infinities", raw: q(`[nan, infinite, -infinite]`), in: `{}`, want: []string{`[null,1.7976931348623157e+308,-1.7976931348623157e+308]`}},
		{name: "any JSON value", raw: q(`.[] | . * 2`), in: `[1,2.5]`, want: []string{`2`, `5`}},
		{name: "metadata", raw: q(`{key: $msg.key, src: $msg.headers["X-Src"], t: $msg.event_time, seq: $msg.sequence}`), in: `{}`, header: hdr,
			want: []string{`{"key":"k1","seq":0,"src":"web","t":null}`}},
		{name: "halt ends outputs", raw: q(`1, halt, 2`), in: `{}`, want: []string{`1`}},
		{name: "no environment", raw: q(`$ENV | length`), in: `{}`, want: []string{`0`}},
		{name: "type error", raw: q(`.a.b`), in: `{"a":1}`, wantErr: `jq: expected an object but got: number (1)`},
		{name: "error function", raw: q(`error("too big")`), in: `{}`, wantErr: `jq: error: too big`},
		{name: "halt_error", raw: q(`"stop\n" | halt_error`), in: `{}`, wantErr: `jq: halt error: stop` + "\n"},
		{name: "error after outputs", raw: q(`1, error("late")`), in: `{}`, wantErr: `jq: error: late`},
		{name: "not json", raw: q(`.`), in: `{"a":`, wantErr: "invalid JSON: unexpected end of JSON input"},
	})
}

// A query's constants are not changed by the conversion of its outputs.
func TestJQConstants(t *testing.T) {
	tr := newTestTransform(t, "jq", map[string]any{"query": `{"a": [1, {"b": 2}], n: .n}`})
	for i, want := range []string{`{"a":[1,{"b":2}],"n":1}`, `{"a":[1,{"b":2}],"n":2}`} {
		out, err := tr.Process(context.Background(), NewMessage([]byte(`{"n":`+string(rune('1'+i))+`}`)), nil)
		if err != nil || len(out) != 1 {
			t.Fatalf("record %d: %v, %v", i, out, err)
		}
		if got := payloadOf(t, out[0]); got != want {
			t.Fatalf("record %d: got %s, want %s", i, got, want)
		}
	}
}

func TestJQDerives(t *testing.T) {
	tr := newTestTransform(t, "jq", map[string]any{"query": `.[]`})
	in := NewMessage([]byte(`[1,2]`))
	in.Header = Header{"A": {"1"}}
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
	tr := newTestTransform(t, "jq", map[string]any{"query": `last(range(infinite))`, "timeout": "20ms"})
	_, err := tr.Process(context.Background(), NewMessage([]byte(`{}`)), nil)
	if !IsPermanent(err) || err.Error() != "jq: query ran longer than timeout 20ms" {
		t.Fatalf("got %v, want a permanent timeout", err)
	}

	// The run stopping is not the record's fault: the error is retried.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = tr.Process(ctx, NewMessage([]byte(`{}`)), nil)
	if IsPermanent(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// With timeout 0 a query runs as long as it takes.
func TestJQNoTimeout(t *testing.T) {
	tr := newTestTransform(t, "jq", map[string]any{"query": `last(range(100000))`, "timeout": "0s"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := tr.Process(ctx, NewMessage([]byte(`{}`)), nil)
	if err != nil || len(out) != 1 || payloadOf(t, out[0]) != "99999" {
		t.Fatalf("got %v, %v", out, err)
	}
}

func TestJQParams(t *testing.T) {
	checkParamErrors(t, "jq", []paramCase{
		{map[string]any{}, "query", `missing required parameter "query"`},
		{map[string]any{"query": " "}, "query", "query: must not be empty"},
		{map[string]any{"query": ".a |"}, "query", "query: jq query does not parse at byte 4: unexpected EOF"},
		{map[string]any{"query": "{a"}, "query", `query: jq query does not parse at byte 2: unexpected EOF`},
		{map[string]any{"query": "nope(1)"}, "query", "query: jq query does not compile: function not defined: nope/1"},
		{map[string]any{"query": "$x"}, "query", "query: jq query does not compile: variable not defined: $x"},
		{map[string]any{"query": ".", "timeout": "soon"}, "timeout", "timeout"},
	})
}
