package core

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestTemplate(t *testing.T) {
	hdr := stages.Header{"X-Src": {"web"}}
	tm := func(src string) map[string]any { return map[string]any{"template": src} }
	stagetest.RunTransformCases(t, "template", []stagetest.TransformCase{
		{Name: "text payload", Raw: tm(`{{.id}}: {{upper .customer}} paid {{printf "%.2f" .amount}}`), In: `{"id":7,"customer":"ann","amount":12.5}`, Header: hdr,
			Want: []string{`7: ANN paid 12.50`}},
		{Name: "numbers print as in JSON", Raw: tm(`{{.a}} {{.b}} {{.c}} {{.d}} {{.e}}`), In: `{"a":1234567.5,"b":9007199254740993,"c":1e21,"d":0.000001,"e":-0.5}`,
			Want: []string{`1234567.5 9007199254740993 1e+21 0.000001 -0.5`}},
		{Name: "null prints as nothing", Raw: tm(`[{{.a}}]{{if .a}}yes{{else}}no{{end}}`), In: `{"a":null}`, Want: []string{`[]no`}},
		{Name: "nested and index", Raw: tm(`{{.user.name}} {{index .tags 1}} {{len .tags}}`), In: `{"user":{"name":"bo"},"tags":["x","y"]}`, Want: []string{`bo y 2`}},
		{Name: "json", Raw: tm(`{{json .}}|{{json .b}}|{{json .s}}`), In: `{"a":null,"b":[1.5,{"c":true}],"s":"<q>"}`,
			Want: []string{`{"a":null,"b":[1.5,{"c":true}],"s":"<q>"}|[1.5,{"c":true}]|"<q>"`}},
		{Name: "get and default", Raw: tm(`{{get . "nick" | default "anon"}} {{default "none" .a}} {{default "x" .s}} {{default "x" .n}}`), In: `{"a":null,"s":"","n":0}`,
			Want: []string{`anon none x 0`}},
		{Name: "with get", Raw: tm(`{{with get . "note"}}({{.}}){{else}}-{{end}}`), In: `{"note":"hi"}`, Want: []string{`(hi)`}},
		{Name: "join lower", Raw: tm(`{{join ", " .tags | lower}}`), In: `{"tags":["A",1,2.5,null,true]}`, Want: []string{`a, 1, 2.5, , true`}},
		{Name: "scalar record", Raw: tm(`<{{.}}>`), In: `"hi"`, Want: []string{`<hi>`}},
		{Name: "empty output", Raw: tm(`{{if .x}}x{{end}}`), In: `{"x":false}`, Want: []string{``}},
		{Name: "field", Raw: map[string]any{"template": `{{.first}} {{.last}}`, "field": "name"}, In: `{"first":"Ann","last":"Lee","n":1.5}`, Header: hdr,
			Want: []string{`{"first":"Ann","last":"Lee","n":1.5,"name":"Ann Lee"}`}},
		{Name: "field replaced", Raw: map[string]any{"template": `{{.n}}!`, "field": "n"}, In: `{"n":3}`, Want: []string{`{"n":"3!"}`}},
		{Name: "missing key", Raw: tm(`{{.a}} {{.nick}}`), In: `{"a":1}`,
			WantErr: `template: line 1:9: executing "template" at <.nick>: map has no entry for key "nick"`},
		{Name: "missing nested key", Raw: tm(`{{.user.nick}}`), In: `{"user":{}}`,
			WantErr: `template: line 1:7: executing "template" at <.user.nick>: map has no entry for key "nick"`},
		{Name: "join of a string", Raw: tm(`{{join "," .s}}`), In: `{"s":"x"}`,
			WantErr: `template: line 1:2: executing "template" at <join "," .s>: error calling join: join: want an array`},
		{Name: "field needs an object", Raw: map[string]any{"template": `x`, "field": "f"}, In: `[1]`, WantErr: "record is a JSON array, not an object"},
		{Name: "not json", Raw: tm(`x`), In: `nope`, WantErr: "invalid JSON: invalid character 'o' in literal null (expecting 'u') (at byte 2)"},
	})
}

// The text payload is not JSON: it is passed on as it is.
func TestTemplateRawPayload(t *testing.T) {
	tr := stagetest.NewTransform(t, "template", map[string]any{"template": "{{.a}}\n{{.b}}"})
	in := stages.NewMessage([]byte(`{"a":"x y","b":"<z>"}`))
	out, err := tr.Process(context.Background(), in, nil)
	if err != nil || len(out) != 1 || out[0] != in {
		t.Fatalf("got %v, %v", out, err)
	}
	if got := stagetest.PayloadOf(t, in); got != "x y\n<z>" {
		t.Fatalf("payload %q", got)
	}
	// The transform reuses its buffer: the payload must not change.
	if _, err := tr.Process(context.Background(), stages.NewMessage([]byte(`{"a":"1","b":"2"}`)), nil); err != nil {
		t.Fatal(err)
	}
	if got := stagetest.PayloadOf(t, in); got != "x y\n<z>" {
		t.Fatalf("payload changed to %q", got)
	}
}

func TestTemplateParams(t *testing.T) {
	stagetest.CheckParamErrors(t, "template", []stagetest.ParamCase{
		{Raw: map[string]any{}, Param: "template", Msg: `missing required parameter "template"`},
		{Raw: map[string]any{"template": ""}, Param: "template", Msg: "template: must not be empty"},
		{Raw: map[string]any{"template": "{{.a"}, Param: "template", Msg: `template: does not parse: line 1: unclosed action`},
		{Raw: map[string]any{"template": "{{nope .a}}"}, Param: "template", Msg: `template: does not parse: line 1: function "nope" not defined`},
		{Raw: map[string]any{"template": "{{if .a}}"}, Param: "template", Msg: `template: does not parse: line 1: unexpected EOF`},
		{Raw: map[string]any{"template": "x", "field": ""}, Param: "field", Msg: "field: must not be empty"},
	})
}
