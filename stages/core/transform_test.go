package core

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestMap(t *testing.T) {
	hdr := stages.Header{"X-Src": {"web", "app"}, stages.HeaderKey: {"k1"}}
	stagetest.RunTransformCases(t, "map", []stagetest.TransformCase{
		{Name: "new record", Raw: map[string]any{"expr": `{"id": int(id), "customer": upper(customer), "amount": float(amount)}`},
			In: `{"id":"7","customer":"ann","amount":"1.5","drop":true}`, Want: []string{`{"amount":1.5,"customer":"ANN","id":7}`}},
		{Name: "headers and key", Raw: map[string]any{"expr": `{"src": msg.headers["X-Src"], "key": msg.key, "n": n}`},
			In: `{"n":9007199254740993}`, Header: hdr, Want: []string{`{"key":"k1","n":9007199254740993,"src":"web"}`}},
		{Name: "scalar result", Raw: map[string]any{"expr": `a + b`}, In: `{"a":1,"b":2}`, Want: []string{"3"}},
		{Name: "no html escaping", Raw: map[string]any{"expr": `{"h": "<" + s + ">"}`}, In: `{"s":"&"}`, Want: []string{`{"h":"<&>"}`}},
		{Name: "not an object", Raw: map[string]any{"expr": `1`}, In: `[1]`, WantErr: "record is a JSON array, not an object"},
		{Name: "not json", Raw: map[string]any{"expr": `1`}, In: `{"a":`, WantErr: "invalid JSON: unexpected end of JSON input (at byte 5)"},
	})
}

func TestMapExpressionFails(t *testing.T) {
	tr := stagetest.NewTransform(t, "map", map[string]any{"expr": "int(s)"})
	_, err := tr.Process(context.Background(), stages.NewMessage([]byte(`{"s":"abc"}`)), nil)
	if !stages.IsPermanent(err) || !strings.HasSuffix(err.Error(), ` (in expression "int(s)")`) {
		t.Fatalf("got %v, want a permanent error naming the expression", err)
	}
}

func TestMapReusesMessage(t *testing.T) {
	tr := stagetest.NewTransform(t, "map", map[string]any{"expr": `{"b": a}`})
	in := stages.NewMessage([]byte(`{"a":1}`))
	out, err := tr.Process(context.Background(), in, nil)
	if err != nil || len(out) != 1 || out[0] != in {
		t.Fatalf("got %v, %v; want the input itself", out, err)
	}
}

func TestFilter(t *testing.T) {
	hdr := stages.Header{"X-Region": {"eu"}}
	stagetest.RunTransformCases(t, "filter", []stagetest.TransformCase{
		// The kept message's bytes are untouched, spacing and all.
		{Name: "kept", Raw: map[string]any{"expr": `amount >= 100`}, In: `{"amount":  150, "z":1}`, Want: []string{`{"amount":  150, "z":1}`}},
		{Name: "filtered", Raw: map[string]any{"expr": `amount >= 100`}, In: `{"amount":50}`, Want: nil},
		{Name: "headers", Raw: map[string]any{"expr": `msg.headers["X-Region"] == "eu"`}, In: `{}`, Header: hdr, Want: []string{`{}`}},
		{Name: "headers filtered", Raw: map[string]any{"expr": `msg.headers["X-Region"] == "us"`}, In: `{}`, Header: hdr, Want: nil},
		{Name: "not bool", Raw: map[string]any{"expr": `amount`}, In: `{"amount":5}`, WantErr: `filter expression "amount" produced int64, want bool`},
		{Name: "missing field", Raw: map[string]any{"expr": `nope`}, In: `{}`, WantErr: `filter expression "nope" produced <nil>, want bool`},
		{Name: "not an object", Raw: map[string]any{"expr": `true`}, In: `"s"`, WantErr: "record is a JSON string, not an object"},
	})
}

func TestFilterKeepsPayload(t *testing.T) {
	tr := stagetest.NewTransform(t, "filter", map[string]any{"expr": `msg.key == "" && a == 1`})
	payload := []byte(`{"a": 1}`)
	in := stages.NewMessage(payload)
	out, err := tr.Process(context.Background(), in, nil)
	if err != nil || len(out) != 1 || out[0] != in {
		t.Fatalf("got %v, %v", out, err)
	}
	if in.NeedsEncoding() {
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
	hdr := stages.Header{"Trace": {"t1"}}
	stagetest.RunTransformCases(t, "split", []stagetest.TransformCase{
		{Name: "elements", Raw: map[string]any{"field": "items"}, In: `{"id":1,"items":[1,{"x":"<y>"},"s",null,[2]]}`, Header: hdr,
			Want: []string{"1", `{"x":"<y>"}`, `"s"`, "null", "[2]"}},
		{Name: "dotted path", Raw: map[string]any{"field": "order.lines.items"}, In: `{"order":{"lines":{"items":[{"sku":"a"},{"sku":"b"}]}}}`,
			Want: []string{`{"sku":"a"}`, `{"sku":"b"}`}},
		{Name: "field with a dot", Raw: map[string]any{"field": "a.b"}, In: `{"a.b":[1],"a":{"b":[2]}}`, Want: []string{"1"}},
		{Name: "empty array", Raw: map[string]any{"field": "items"}, In: `{"items":[]}`, Want: nil},
		{Name: "missing", Raw: map[string]any{"field": "items"}, In: `{"other":[1]}`, WantErr: `split: field "items" is missing`},
		{Name: "missing nested", Raw: map[string]any{"field": "a.b"}, In: `{"a":{"c":[1]}}`, WantErr: `split: field "a.b" is missing`},
		{Name: "not an array", Raw: map[string]any{"field": "items"}, In: `{"items":{"a":1}}`, WantErr: `split: field "items" is a JSON object, not an array`},
		{Name: "null", Raw: map[string]any{"field": "a.b"}, In: `{"a":{"b":null}}`, WantErr: `split: field "a.b" is a JSON null, not an array`},
		{Name: "through a scalar", Raw: map[string]any{"field": "a.b.c"}, In: `{"a":{"b":3}}`, WantErr: `split: field "a.b.c": "a.b" is a JSON number, not an object`},
		{Name: "not an object", Raw: map[string]any{"field": "items"}, In: `[1]`, WantErr: "record is a JSON array, not an object"},
	})
}

func TestSplitDerives(t *testing.T) {
	tr := stagetest.NewTransform(t, "split", map[string]any{"field": "items"})
	in := stages.NewMessage([]byte(`{"items":[1,2]}`))
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

func TestTransformParams(t *testing.T) {
	tests := []struct {
		typ   string
		Raw   map[string]any
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
			_, errs := stagetest.Lookup(t, stages.RoleTransform, tt.typ).ParseParams(tt.Raw)
			var pe *stages.ParamError
			if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], stages.ErrInvalidParam) {
				t.Fatalf("params %v: got %v, want one error on %s", tt.Raw, errs, tt.param)
			}
		})
	}
}
