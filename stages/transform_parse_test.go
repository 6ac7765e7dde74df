package stages

import (
	"context"
	"reflect"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	hdr := Header{"X-Src": {"web"}}
	f := func(format string, kv ...any) map[string]any {
		m := map[string]any{"format": format}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	runTransformCases(t, "parse", []transformCase{
		// json
		{name: "json payload", raw: f("json"), in: `{"b": 1, "a": [9007199254740993, 1.5]}`, header: hdr, want: []string{`{"a":[9007199254740993,1.5],"b":1}`}},
		{name: "json lines payload", raw: f("json"), in: "{\"n\":1}\n\n{\"n\":2}\r\n3 \"x\"", header: hdr, want: []string{`{"n":1}`, `{"n":2}`, `3`, `"x"`}},
		{name: "json field", raw: f("json", "field", "body"), in: `{"body":"{\"a\":1}","id":2}`, want: []string{`{"a":1}`}},
		{name: "json field to target", raw: f("json", "field", "body", "target", "parsed"), in: `{"body":"[1,2]","id":2}`,
			want: []string{`{"body":"[1,2]","id":2,"parsed":[1,2]}`}},
		{name: "json field in place", raw: f("json", "field", "body", "target", "body"), in: `{"body":"{\"a\":1}"}`, want: []string{`{"body":{"a":1}}`}},
		{name: "json several to target", raw: f("json", "field", "body", "target", "v"), in: `{"body":"1 2","id":3}`,
			want: []string{`{"body":"1 2","id":3,"v":1}`, `{"body":"1 2","id":3,"v":2}`}},
		{name: "json blank", raw: f("json", "field", "body"), in: `{"body":" \n "}`, want: nil},
		{name: "json invalid", raw: f("json"), in: `{"a":`, wantErr: `parse: payload as json: unexpected end of JSON input`},
		{name: "json invalid second value", raw: f("json", "field", "b"), in: `{"b":"{} {\"a\" 1}"}`,
			wantErr: `parse: field "b" as json: value 2: invalid character '1' after object key`},
		{name: "json not utf-8", raw: f("json"), in: "\"\xff\"", wantErr: `parse: payload is not valid UTF-8 (at byte 1)`},

		// csv
		{name: "csv with header", raw: f("csv"), in: "\ufeffid,name\n1,ann\n\n2,\"bo, jr\"\r\n", header: hdr,
			want: []string{`{"id":"1","name":"ann"}`, `{"id":"2","name":"bo, jr"}`}},
		{name: "csv header only", raw: f("csv"), in: "id,name\n", want: nil},
		{name: "csv columns", raw: f("csv", "columns", []any{"a", "b"}, "delimiter", ";"), in: "1;2\n3;4", want: []string{`{"a":"1","b":"2"}`, `{"a":"3","b":"4"}`}},
		{name: "csv tab", raw: f("csv", "columns", []any{"a", "b"}, "delimiter", `\t`), in: "1\t2", want: []string{`{"a":"1","b":"2"}`}},
		{name: "csv field to target", raw: f("csv", "field", "line", "target", "row", "columns", []any{"x", "y"}), in: `{"line":"1,2","n":5}`,
			want: []string{`{"line":"1,2","n":5,"row":{"x":"1","y":"2"}}`}},
		{name: "csv field replaces", raw: f("csv", "field", "line", "columns", "x"), in: `{"line":"a"}`, want: []string{`{"x":"a"}`}},
		{name: "csv wrong width", raw: f("csv"), in: "a,b\n1,2\n3\n", wantErr: `parse: payload as csv: line 3: row has 1 fields, the header has 2`},
		{name: "csv wrong width with columns", raw: f("csv", "columns", []any{"a"}, "field", "l"), in: `{"l":"1,2"}`,
			wantErr: `parse: field "l" as csv: line 1: row has 2 fields, columns names 1`},
		{name: "csv bad quote", raw: f("csv"), in: "a\n\"x\"y\n", wantErr: `parse: payload as csv: line 2: extraneous or missing " in quoted-field`},
		{name: "csv repeated header", raw: f("csv"), in: "a,a\n1,2\n", wantErr: `parse: payload as csv: line 1: header: column "a" is repeated`},

		// lines
		{name: "lines payload", raw: f("lines"), in: "one\r\n\n  \ntwo  \nthree", header: hdr,
			want: []string{`{"line":"one"}`, `{"line":"two  "}`, `{"line":"three"}`}},
		{name: "lines to target", raw: f("lines", "field", "text", "target", "line"), in: `{"text":"a\nb","id":1}`,
			want: []string{`{"id":1,"line":"a","text":"a\nb"}`, `{"id":1,"line":"b","text":"a\nb"}`}},
		{name: "lines empty", raw: f("lines"), in: "", want: nil},
		{name: "lines not utf-8", raw: f("lines"), in: "ok\n\xc3(", wantErr: `parse: payload is not valid UTF-8 (at byte 3)`},

		// logfmt
		{name: "logfmt", raw: f("logfmt"), in: `level=info msg="hello \"world\"\t!" n=5 empty= ok url=http://x/?a=b   x=1 x=2`,
			want: []string{`{"empty":"","level":"info","msg":"hello \"world\"\t!","n":"5","ok":true,"url":"http://x/?a=b","x":"2"}`}},
		{name: "logfmt lines", raw: f("logfmt"), in: "a=1\n\n\tb=2 \r\n", want: []string{`{"a":"1"}`, `{"b":"2"}`}},
		{name: "logfmt field to target", raw: f("logfmt", "field", "message", "target", "fields"), in: `{"message":"at=x dur=1s","ts":1}`,
			want: []string{`{"fields":{"at":"x","dur":"1s"},"message":"at=x dur=1s","ts":1}`}},
		{name: "logfmt unicode", raw: f("logfmt"), in: `ключ="знач ение" k=é`, want: []string{`{"k":"é","ключ":"знач ение"}`}},
		{name: "logfmt no key", raw: f("logfmt"), in: `a=1 =2`, wantErr: `parse: payload as logfmt: line 1 col 5: want a key, got '='`},
		{name: "logfmt unterminated", raw: f("logfmt"), in: "a=1\nb=\"x", wantErr: `parse: payload as logfmt: line 2 col 3: unterminated quoted value`},
		{name: "logfmt quote in value", raw: f("logfmt"), in: `a=x"y`, wantErr: `parse: payload as logfmt: line 1 col 4: quote inside the unquoted value of "a"`},
		{name: "logfmt quote in key", raw: f("logfmt"), in: `a"b=1`, wantErr: `parse: payload as logfmt: line 1 col 2: quote in key "a"`},
		{name: "logfmt after quote", raw: f("logfmt"), in: `a="x"b`, wantErr: `parse: payload as logfmt: line 1 col 6: want a space after the quoted value of "a"`},
		{name: "logfmt bad escape", raw: f("logfmt"), in: `a="\q"`, wantErr: `parse: payload as logfmt: line 1 col 3: value of "a": invalid quoted string`},

		// the field
		{name: "field missing", raw: f("lines", "field", "text"), in: `{"other":"x"}`, wantErr: `parse: field "text" is missing`},
		{name: "field not a string", raw: f("lines", "field", "text"), in: `{"text":["x"]}`, wantErr: `parse: field "text" is a JSON array, not a string`},
		{name: "field of a non-object", raw: f("lines", "field", "text"), in: `"x"`, wantErr: "record is a JSON string, not an object"},
	})
}

// Several outputs with target each get a record of their own.
func TestParseTargetCopies(t *testing.T) {
	tr := newTestTransform(t, "parse", map[string]any{"format": "lines", "field": "t", "target": "l"})
	in := NewMessage([]byte(`{"t":"a\nb\nc"}`))
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
	checkParamErrors(t, "parse", []paramCase{
		{map[string]any{}, "format", `missing required parameter "format"`},
		{map[string]any{"format": "xml"}, "format", "format: must be one of json, csv, lines, logfmt"},
		{map[string]any{"format": "json", "target": "x"}, "target", "target: needs field"},
		{map[string]any{"format": "json", "field": ""}, "field", "field: must not be empty"},
		{map[string]any{"format": "json", "field": "a", "target": ""}, "target", "target: must not be empty"},
		{map[string]any{"format": "json", "columns": []any{"a"}}, "columns", "columns: applies to format csv only (format is json)"},
		{map[string]any{"format": "lines", "delimiter": ";"}, "delimiter", "delimiter: applies to format csv only"},
		{map[string]any{"format": "csv", "columns": []any{}}, "columns", "columns: want at least one column"},
		{map[string]any{"format": "csv", "columns": []any{"a", "b", "a"}}, "columns", `columns: column "a" is repeated`},
		{map[string]any{"format": "csv", "delimiter": ";;"}, "delimiter", `delimiter: want one character other than a quote or a line ending (got ";;")`},
		{map[string]any{"format": "csv", "delimiter": `"`}, "delimiter", "delimiter: want one character"},
		{map[string]any{"format": "csv", "delimiter": ""}, "delimiter", "delimiter: want one character"},
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
				q, err := EncodeJSON(s)
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
