package stages

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// transformCase runs one input through a transform.
type transformCase struct {
	name    string
	raw     map[string]any // the transform's params
	in      string
	header  Header
	want    []string // output payloads
	wantErr string   // a permanent error's text, "" for none
}

func runTransformCases(t *testing.T, typ string, tests []transformCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestTransform(t, typ, tt.raw)
			in := NewMessage([]byte(tt.in))
			in.Header = tt.header
			prior := NewMessage(nil)
			out, err := tr.Process(context.Background(), in, []*Message{prior})
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrPermanent) || err.Error() != tt.wantErr {
					t.Fatalf("got %v, want permanent %q", err, tt.wantErr)
				}
				if len(out) != 1 || out[0] != prior {
					t.Fatalf("an error must leave out as it was, got %d messages", len(out))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(out) == 0 || out[0] != prior {
				t.Fatal("Process must append to out")
			}
			var got []string
			for _, m := range out[1:] {
				got = append(got, payloadOf(t, m))
				if !reflect.DeepEqual(m.Header, tt.header) {
					t.Errorf("output headers %v, want %v", m.Header, tt.header)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMap(t *testing.T) {
	hdr := Header{"X-Src": {"web", "app"}, HeaderKey: {"k1"}}
	runTransformCases(t, "map", []transformCase{
		{name: "new record", raw: map[string]any{"expr": `{"id": int(id), "customer": upper(customer), "amount": float(amount)}`},
			in: `{"id":"7","customer":"ann","amount":"1.5","drop":true}`, want: []string{`{"amount":1.5,"customer":"ANN","id":7}`}},
		{name: "headers and key", raw: map[string]any{"expr": `{"src": msg.headers["X-Src"], "key": msg.key, "n": n}`},
			in: `{"n":9007199254740993}`, header: hdr, want: []string{`{"key":"k1","n":9007199254740993,"src":"web"}`}},
		{name: "scalar result", raw: map[string]any{"expr": `a + b`}, in: `{"a":1,"b":2}`, want: []string{"3"}},
		{name: "no html escaping", raw: map[string]any{"expr": `{"h": "<" + s + ">"}`}, in: `{"s":"&"}`, want: []string{`{"h":"<&>"}`}},
		{name: "not an object", raw: map[string]any{"expr": `1`}, in: `[1]`, wantErr: "record is a JSON array, not an object"},
		{name: "not json", raw: map[string]any{"expr": `1`}, in: `{"a":`, wantErr: "invalid JSON: unexpected end of JSON input"},
	})
}

func TestMapExpressionFails(t *testing.T) {
	tr := newTestTransform(t, "map", map[string]any{"expr": "int(s)"})
	_, err := tr.Process(context.Background(), NewMessage([]byte(`{"s":"abc"}`)), nil)
	if !IsPermanent(err) || !strings.HasSuffix(err.Error(), ` (in expression "int(s)")`) {
		t.Fatalf("got %v, want a permanent error naming the expression", err)
	}
}

func TestMapReusesMessage(t *testing.T) {
	tr := newTestTransform(t, "map", map[string]any{"expr": `{"b": a}`})
	in := NewMessage([]byte(`{"a":1}`))
	out, err := tr.Process(context.Background(), in, nil)
	if err != nil || len(out) != 1 || out[0] != in {
		t.Fatalf("got %v, %v; want the input itself", out, err)
	}
}

func TestFilter(t *testing.T) {
	hdr := Header{"X-Region": {"eu"}}
	runTransformCases(t, "filter", []transformCase{
		// The kept message's bytes are untouched, spacing and all.
		{name: "kept", raw: map[string]any{"expr": `amount >= 100`}, in: `{"amount":  150, "z":1}`, want: []string{`{"amount":  150, "z":1}`}},
		{name: "filtered", raw: map[string]any{"expr": `amount >= 100`}, in: `{"amount":50}`, want: nil},
		{name: "headers", raw: map[string]any{"expr": `msg.headers["X-Region"] == "eu"`}, in: `{}`, header: hdr, want: []string{`{}`}},
		{name: "headers filtered", raw: map[string]any{"expr": `msg.headers["X-Region"] == "us"`}, in: `{}`, header: hdr, want: nil},
		{name: "not bool", raw: map[string]any{"expr": `amount`}, in: `{"amount":5}`, wantErr: `filter expression "amount" produced int64, want bool`},
		{name: "missing field", raw: map[string]any{"expr": `nope`}, in: `{}`, wantErr: `filter expression "nope" produced <nil>, want bool`},
		{name: "not an object", raw: map[string]any{"expr": `true`}, in: `"s"`, wantErr: "record is a JSON string, not an object"},
	})
}

func TestFilterKeepsPayload(t *testing.T) {
	tr := newTestTransform(t, "filter", map[string]any{"expr": `msg.key == "" && a == 1`})
	payload := []byte(`{"a": 1}`)
	in := NewMessage(payload)
	out, err := tr.Process(context.Background(), in, nil)
	if err != nil || len(out) != 1 || out[0] != in {
		t.Fatalf("got %v, %v", out, err)
	}
	if in.stale {
		t.Fatal("filter marked the payload for re-encoding")
	}
	if got, _ := in.Payload(); &got[0] != &payload[0] {
		t.Fatal("filter replaced the payload")
	}
	if rec, _ := in.Record(); len(rec) != 1 {
		t.Fatalf("filter left msg in the record: %v", rec)
	}
}

func TestSplit(t *testing.T) {
	hdr := Header{"Trace": {"t1"}}
	runTransformCases(t, "split", []transformCase{
		{name: "elements", raw: map[string]any{"field": "items"}, in: `{"id":1,"items":[1,{"x":"<y>"},"s",null,[2]]}`, header: hdr,
			want: []string{"1", `{"x":"<y>"}`, `"s"`, "null", "[2]"}},
		{name: "dotted path", raw: map[string]any{"field": "order.lines.items"}, in: `{"order":{"lines":{"items":[{"sku":"a"},{"sku":"b"}]}}}`,
			want: []string{`{"sku":"a"}`, `{"sku":"b"}`}},
		{name: "field with a dot", raw: map[string]any{"field": "a.b"}, in: `{"a.b":[1],"a":{"b":[2]}}`, want: []string{"1"}},
		{name: "empty array", raw: map[string]any{"field": "items"}, in: `{"items":[]}`, want: nil},
		{name: "missing", raw: map[string]any{"field": "items"}, in: `{"other":[1]}`, wantErr: `split: field "items" is missing`},
		{name: "missing nested", raw: map[string]any{"field": "a.b"}, in: `{"a":{"c":[1]}}`, wantErr: `split: field "a.b" is missing`},
		{name: "not an array", raw: map[string]any{"field": "items"}, in: `{"items":{"a":1}}`, wantErr: `split: field "items" is a JSON object, not an array`},
		{name: "null", raw: map[string]any{"field": "a.b"}, in: `{"a":{"b":null}}`, wantErr: `split: field "a.b" is a JSON null, not an array`},
		{name: "through a scalar", raw: map[string]any{"field": "a.b.c"}, in: `{"a":{"b":3}}`, wantErr: `split: field "a.b.c": "a.b" is a JSON number, not an object`},
		{name: "not an object", raw: map[string]any{"field": "items"}, in: `[1]`, wantErr: "record is a JSON array, not an object"},
	})
}

func TestSplitDerives(t *testing.T) {
	tr := newTestTransform(t, "split", map[string]any{"field": "items"})
	in := NewMessage([]byte(`{"items":[1,2]}`))
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

func TestTransformParams(t *testing.T) {
	tests := []struct {
		typ   string
		raw   map[string]any
		param string
	}{
		{"map", map[string]any{}, "expr"},
		{"map", map[string]any{"expr": "1 +"}, "expr"},
		{"filter", map[string]any{}, "expr"},
		{"filter", map[string]any{"expr": "a ==="}, "expr"},
		{"split", map[string]any{}, "field"},
		{"split", map[string]any{"field": "a..b"}, "field"},
		{"split", map[string]any{"field": ".a"}, "field"},
		{"split", map[string]any{"field": ""}, "field"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			_, errs := lookup(t, RoleTransform, tt.typ).ParseParams(tt.raw)
			var pe *ParamError
			if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], ErrInvalidParam) {
				t.Fatalf("params %v: got %v, want one error on %s", tt.raw, errs, tt.param)
			}
		})
	}
}
