package stages

import (
	"context"
	"testing"
)

func TestTemplate(t *testing.T) {
	hdr := Header{"X-Src": {"web"}}
	tm := func(src string) map[string]any { return map[string]any{"template": src} }
	runTransformCases(t, "template", []transformCase{
		{name: "text payload", raw: tm(`{{.id}}: {{upper .customer}} paid {{printf "%.2f" .amount}}`), in: `{"id":7,"customer":"ann","amount":12.5}`, header: hdr,
			want: []string{`7: ANN paid 12.50`}},
		{name: "numbers print as in JSON", raw: tm(`{{.a}} {{.b}} {{.c}} {{.d}} {{.e}}`), in: `{"a":1234567.5,"b":9007199254740993,"c":1e21,"d":0.000001,"e":-0.5}`,
			want: []string{`1234567.5 9007199254740993 1e+21 0.000001 -0.5`}},
		{name: "null prints as nothing", raw: tm(`[{{.a}}]{{if .a}}yes{{else}}no{{end}}`), in: `{"a":null}`, want: []string{`[]no`}},
		{name: "nested and index", raw: tm(`{{.user.name}} {{index .tags 1}} {{len .tags}}`), in: `{"user":{"name":"bo"},"tags":["x","y"]}`, want: []string{`bo y 2`}},
		{name: "json", raw: tm(`{{json .}}|{{json .b}}|{{json .s}}`), in: `{"a":null,"b":[1.5,{"c":true}],"s":"<q>"}`,
			want: []string{`{"a":null,"b":[1.5,{"c":true}],"s":"<q>"}|[1.5,{"c":true}]|"<q>"`}},
		{name: "get and default", raw: tm(`{{get . "nick" | default "anon"}} {{default "none" .a}} {{default "x" .s}} {{default "x" .n}}`), in: `{"a":null,"s":"","n":0}`,
			want: []string{`anon none x 0`}},
		{name: "with get", raw: tm(`{{with get . "note"}}({{.}}){{else}}-{{end}}`), in: `{"note":"hi"}`, want: []string{`(hi)`}},
		{name: "join lower", raw: tm(`{{join ", " .tags | lower}}`), in: `{"tags":["A",1,2.5,null,true]}`, want: []string{`a, 1, 2.5, , true`}},
		{name: "scalar record", raw: tm(`<{{.}}>`), in: `"hi"`, want: []string{`<hi>`}},
		{name: "empty output", raw: tm(`{{if .x}}x{{end}}`), in: `{"x":false}`, want: []string{``}},
		{name: "field", raw: map[string]any{"template": `{{.first}} {{.last}}`, "field": "name"}, in: `{"first":"Ann","last":"Lee","n":1.5}`, header: hdr,
			want: []string{`{"first":"Ann","last":"Lee","n":1.5,"name":"Ann Lee"}`}},
		{name: "field replaced", raw: map[string]any{"template": `{{.n}}!`, "field": "n"}, in: `{"n":3}`, want: []string{`{"n":"3!"}`}},
		{name: "missing key", raw: tm(`{{.a}} {{.nick}}`), in: `{"a":1}`,
			wantErr: `template: line 1:9: executing "template" at <.nick>: map has no entry for key "nick"`},
		{name: "missing nested key", raw: tm(`{{.user.nick}}`), in: `{"user":{}}`,
			wantErr: `template: line 1:7: executing "template" at <.user.nick>: map has no entry for key "nick"`},
		{name: "join of a string", raw: tm(`{{join "," .s}}`), in: `{"s":"x"}`,
			wantErr: `template: line 1:2: executing "template" at <join "," .s>: error calling join: join: want an array`},
		{name: "field needs an object", raw: map[string]any{"template": `x`, "field": "f"}, in: `[1]`, wantErr: "record is a JSON array, not an object"},
		{name: "not json", raw: tm(`x`), in: `nope`, wantErr: "invalid JSON: invalid character 'o' in literal null (expecting 'u')"},
	})
}

// The text payload is not JSON: it is passed on as it is.
func TestTemplateRawPayload(t *testing.T) {
	tr := newTestTransform(t, "template", map[string]any{"template": "{{.a}}\n{{.b}}"})
	in := NewMessage([]byte(`{"a":"x y","b":"<z>"}`))
	out, err := tr.Process(context.Background(), in, nil)
	if err != nil || len(out) != 1 || out[0] != in {
		t.Fatalf("got %v, %v", out, err)
	}
	if got := payloadOf(t, in); got != "x y\n<z>" {
		t.Fatalf("payload %q", got)
	}
	// The transform reuses its buffer: the payload must not change.
	if _, err := tr.Process(context.Background(), NewMessage([]byte(`{"a":"1","b":"2"}`)), nil); err != nil {
		t.Fatal(err)
	}
	if got := payloadOf(t, in); got != "x y\n<z>" {
		t.Fatalf("payload changed to %q", got)
	}
}

func TestTemplateParams(t *testing.T) {
	checkParamErrors(t, "template", []paramCase{
		{map[string]any{}, "template", `missing required parameter "template"`},
		{map[string]any{"template": ""}, "template", "template: must not be empty"},
		{map[string]any{"template": "{{.a"}, "template", `template: does not parse: line 1: unclosed action`},
		{map[string]any{"template": "{{nope .a}}"}, "template", `template: does not parse: line 1: function "nope" not defined`},
		{map[string]any{"template": "{{if .a}}"}, "template", `template: does not parse: line 1: unexpected EOF`},
		{map[string]any{"template": "x", "field": ""}, "field", "field: must not be empty"},
	})
}
