package core

import (
	"context"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestParse(t *testing.T) {
	hdr := stages.Header{"X-Src": {"web"}}
	f := func(format string, kv ...any) map[string]any {
		m := map[string]any{"format": format}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	stagetest.RunTransformCases(t, "parse", []stagetest.TransformCase{
		// json
		{Name: "json payload", Raw: f("json"), In: `{"b": 1, "a": [9007199254740993, 1.5]}`, Header: hdr, Want: []string{`{"a":[9007199254740993,1.5],"b":1}`}},
		{Name: "json lines payload", Raw: f("json"), In: "{\"n\":1}\n\n{\"n\":2}\r\n3 \"x\"", Header: hdr, Want: []string{`{"n":1}`, `{"n":2}`, `3`, `"x"`}},
		{Name: "json field", Raw: f("json", "field", "body"), In: `{"body":"{\"a\":1}","id":2}`, Want: []string{`{"a":1}`}},
		{Name: "json field to target", Raw: f("json", "field", "body", "target", "parsed"), In: `{"body":"[1,2]","id":2}`,
			Want: []string{`{"body":"[1,2]","id":2,"parsed":[1,2]}`}},
		{Name: "json field in place", Raw: f("json", "field", "body", "target", "body"), In: `{"body":"{\"a\":1}"}`, Want: []string{`{"body":{"a":1}}`}},
		{Name: "json several to target", Raw: f("json", "field", "body", "target", "v"), In: `{"body":"1 2","id":3}`,
			Want: []string{`{"body":"1 2","id":3,"v":1}`, `{"body":"1 2","id":3,"v":2}`}},
		{Name: "json blank", Raw: f("json", "field", "body"), In: `{"body":" \n "}`, Want: nil},
		{Name: "json invalid", Raw: f("json"), In: `{"a":`, WantErr: `parse: payload as json: unexpected end of JSON input (at byte 5)`},
		{Name: "json invalid second value", Raw: f("json", "field", "b"), In: `{"b":"{} {\"a\" 1}"}`,
			WantErr: `parse: field "b" as json: value 2: invalid character '1' after object key`},
		{Name: "json not utf-8", Raw: f("json"), In: "\"\xff\"", WantErr: `parse: payload is not valid UTF-8 (at byte 1)`},

		// csv
		{Name: "csv with header", Raw: f("csv"), In: "\ufeffid,name\n1,ann\n\n2,\"bo, jr\"\r\n", Header: hdr,
			Want: []string{`{"id":"1","name":"ann"}`, `{"id":"2","name":"bo, jr"}`}},
		{Name: "csv header only", Raw: f("csv"), In: "id,name\n", Want: nil},
		{Name: "csv columns", Raw: f("csv", "columns", []any{"a", "b"}, "delimiter", ";"), In: "1;2\n3;4", Want: []string{`{"a":"1","b":"2"}`, `{"a":"3","b":"4"}`}},
		{Name: "csv tab", Raw: f("csv", "columns", []any{"a", "b"}, "delimiter", `\t`), In: "1\t2", Want: []string{`{"a":"1","b":"2"}`}},
		{Name: "csv field to target", Raw: f("csv", "field", "line", "target", "row", "columns", []any{"x", "y"}), In: `{"line":"1,2","n":5}`,
			Want: []string{`{"line":"1,2","n":5,"row":{"x":"1","y":"2"}}`}},
		{Name: "csv field replaces", Raw: f("csv", "field", "line", "columns", "x"), In: `{"line":"a"}`, Want: []string{`{"x":"a"}`}},
		{Name: "csv wrong width", Raw: f("csv"), In: "a,b\n1,2\n3\n", WantErr: `parse: payload as csv: line 3: row has 1 fields, the header has 2`},
		{Name: "csv wrong width with columns", Raw: f("csv", "columns", []any{"a"}, "field", "l"), In: `{"l":"1,2"}`,
			WantErr: `parse: field "l" as csv: line 1: row has 2 fields, columns names 1`},
		{Name: "csv bad quote", Raw: f("csv"), In: "a\n\"x\"y\n", WantErr: `parse: payload as csv: line 2: extraneous or missing " in quoted-field`},
		{Name: "csv repeated header", Raw: f("csv"), In: "a,a\n1,2\n", WantErr: `parse: payload as csv: line 1: header: column "a" is repeated`},

		// lines
		{Name: "lines payload", Raw: f("lines"), In: "one\r\n\n  \ntwo  \nthree", Header: hdr,
			Want: []string{`{"line":"one"}`, `{"line":"two  "}`, `{"line":"three"}`}},
		{Name: "lines to target", Raw: f("lines", "field", "text", "target", "line"), In: `{"text":"a\nb","id":1}`,
			Want: []string{`{"id":1,"line":"a","text":"a\nb"}`, `{"id":1,"line":"b","text":"a\nb"}`}},
		{Name: "lines empty", Raw: f("lines"), In: "", Want: nil},
		{Name: "lines not utf-8", Raw: f("lines"), In: "ok\n\xc3(", WantErr: `parse: payload is not valid UTF-8 (at byte 3)`},

		// logfmt
		{Name: "logfmt", Raw: f("logfmt"), In: `level=info msg="hello \"world\"\t!" n=5 empty= ok url=http://x/?a=b   x=1 x=2`,
			Want: []string{`{"empty":"","level":"info","msg":"hello \"world\"\t!","n":"5","ok":true,"url":"http://x/?a=b","x":"2"}`}},
		{Name: "logfmt lines", Raw: f("logfmt"), In: "a=1\n\n\tb=2 \r\n", Want: []string{`{"a":"1"}`, `{"b":"2"}`}},
		{Name: "logfmt field to target", Raw: f("logfmt", "field", "message", "target", "fields"), In: `{"message":"at=x dur=1s","ts":1}`,
			Want: []string{`{"fields":{"at":"x","dur":"1s"},"message":"at=x dur=1s","ts":1}`}},
		{Name: "logfmt unicode", Raw: f("logfmt"), In: `ключ="знач ение" k=é`, Want: []string{`{"k":"é","ключ":"знач ение"}`}},
		{Name: "logfmt no key", Raw: f("logfmt"), In: `a=1 =2`, WantErr: `parse: payload as logfmt: line 1 col 5: want a key, got '='`},
		{Name: "logfmt unterminated", Raw: f("logfmt"), In: "a=1\nb=\"x", WantErr: `parse: payload as logfmt: line 2 col 3: unterminated quoted value`},
		{Name: "logfmt quote in value", Raw: f("logfmt"), In: `a=x"y`, WantErr: `parse: payload as logfmt: line 1 col 4: quote inside the unquoted value of "a"`},
		{Name: "logfmt quote in key", Raw: f("logfmt"), In: `a"b=1`, WantErr: `parse: payload as logfmt: line 1 col 2: quote in key "a"`},
		{Name: "logfmt after quote", Raw: f("logfmt"), In: `a="x"b`, WantErr: `parse: payload as logfmt: line 1 col 6: want a space after the quoted value of "a"`},
		{Name: "logfmt bad escape", Raw: f("logfmt"), In: `a="\q"`, WantErr: `parse: payload as logfmt: line 1 col 3: value of "a": invalid quoted string`},

		// the field
		{Name: "field missing", Raw: f("lines", "field", "text"), In: `{"other":"x"}`, WantErr: `parse: field "text" is missing`},
		{Name: "field not a string", Raw: f("lines", "field", "text"), In: `{"text":["x"]}`, WantErr: `parse: field "text" is a JSON array, not a string`},
		{Name: "field of a non-object", Raw: f("lines", "field", "text"), In: `"x"`, WantErr: "record is a JSON string, not an object"},
	})
}

// Several outputs with target each get a record of their own.
func TestParseTargetCopies(t *testing.T) {
	tr := stagetest.NewTransform(t, "parse", map[string]any{"format": "lines", "field": "t", "target": "l"})
	in := stages.NewMessage([]byte(`{"t":"a\nb\nc"}`))
	in.Meta.Sequence = 9
	out, err := tr.Process(context.Background(), in, nil)
	if err != nil || len(out) != 3 {
		t.Fatalf("got %v, %v", out, err)
	}
	for i, want := range []string{"a", "b", "c"} {
		rec, err := out[i].Record()
		if err != nil || rec["l"] != want || out[i].Meta.Sequence != 9 {
			t.Fatalf("output %d: %v, %v", i, rec, err)
		}
	}
}

func TestParseParams(t *testing.T) {
	stagetest.CheckParamErrors(t, "parse", []stagetest.ParamCase{
		{Raw: map[string]any{}, Param: "format", Msg: `missing required parameter "format"`},
		{Raw: map[string]any{"format": "xml"}, Param: "format", Msg: "format: must be one of json, csv, lines, logfmt"},
		{Raw: map[string]any{"format": "json", "target": "x"}, Param: "target", Msg: "target: needs field"},
		{Raw: map[string]any{"format": "json", "field": ""}, Param: "field", Msg: "field: must not be empty"},
		{Raw: map[string]any{"format": "json", "field": "a", "target": ""}, Param: "target", Msg: "target: must not be empty"},
		{Raw: map[string]any{"format": "json", "columns": []any{"a"}}, Param: "columns", Msg: "columns: applies to format csv only (format is json)"},
		{Raw: map[string]any{"format": "lines", "delimiter": ";"}, Param: "delimiter", Msg: "delimiter: applies to format csv only"},
		{Raw: map[string]any{"format": "csv", "columns": []any{}}, Param: "columns", Msg: "columns: want at least one column"},
		{Raw: map[string]any{"format": "csv", "columns": []any{"a", "b", "a"}}, Param: "columns", Msg: `columns: column "a" is repeated`},
		{Raw: map[string]any{"format": "csv", "delimiter": ";;"}, Param: "delimiter", Msg: `delimiter: want one character other than a quote or a line ending (got ";;")`},
		{Raw: map[string]any{"format": "csv", "delimiter": `"`}, Param: "delimiter", Msg: "delimiter: want one character"},
		{Raw: map[string]any{"format": "csv", "delimiter": ""}, Param: "delimiter", Msg: "delimiter: want one character"},
	})
}

// FuzzParseLogfmt: the logfmt parser never panics, and what it parses,
// written back with every value quoted, parses to the same.
func FuzzParseLogfmt(f *testing.F) {
	for _, s := range []string{`a=1 b="x y" c`, `=`, `a="\u00e9\"" b=`, `a="`, "k=v\tl=w", `a=b=c`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if !utf8.ValidString(line) {
			return // Process rejects it before parsing
		}
		rec, err := parseLogfmt([]byte(line))
		if err != nil {
			return
		}
		var b []byte
		for k, v := range rec {
			b = append(b, k...)
			if s, ok := v.(string); ok {
				q, err := stages.EncodeJSON(s)
				if err != nil {
					t.Fatal(err)
				}
				b = append(append(b, '='), q...)
			}
			b = append(b, ' ')
		}
		again, err := parseLogfmt(b)
		if err != nil || !reflect.DeepEqual(again, rec) {
			t.Fatalf("%q parsed to %v; written back as %q it parses to %v, %v", line, rec, b, again, err)
		}
	})
}
