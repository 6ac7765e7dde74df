package stages

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExprEval(t *testing.T) {
	at := "2024-05-01T12:00:00.5Z"
	m := func(payload string) *Message {
		msg := NewMessage([]byte(payload))
		msg.Header = Header{"X-A": {"first", "second"}, HeaderKey: {"key1"}, HeaderEventTime: {at}}
		msg.Meta = Meta{Subject: "sluice.p.s", Stream: "SLUICE_P_S", Sequence: 9, Deliveries: 1}
		return msg
	}
	wantTime, _ := time.Parse(time.RFC3339Nano, at)
	tests := []struct {
		name, expr, in string
		want           any
	}{
		{"fields", `a + b`, `{"a":1,"b":2}`, 3},
		{"big int", `n`, `{"n":9007199254740993}`, int64(9007199254740993)},
		{"nested", `o.p[1]`, `{"o":{"p":["x","y"]}}`, "y"},
		{"unknown name is nil", `nope == nil`, `{}`, true},
		{"headers", `msg.headers["X-A"]`, `{}`, "first"},
		{"metadata", `[msg.key, msg.subject, msg.stream, msg.sequence, msg.deliveries]`, `{}`,
			[]any{"key1", "sluice.p.s", "SLUICE_P_S", uint64(9), uint64(1)}},
		{"event time", `msg.event_time`, `{}`, wantTime},
		{"msg shadows a field", `msg.key`, `{"msg":"own"}`, "key1"},
		{"own msg field through $env", `$env["msg"] + "!"`, `{"msg":"own"}`, "own!"},
		{"merge changes one field", `merge($env, {"b": "x" + string(b)})`, `{"a":1,"b":2}`, map[string]any{"a": int64(1), "b": "x2"}},
		{"merge skips nil", `merge({"a": 1}, nope, {"a": 2, "c": 3})`, `{}`, map[string]any{"a": 2, "c": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := CompileExpr(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if e.String() != tt.expr {
				t.Fatalf("String() = %q", e.String())
			}
			msg := m(tt.in)
			before, err := DecodeJSON([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Eval(msg)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
			// The record is as it was: msg was only borrowed.
			rec, _ := msg.Record()
			if !reflect.DeepEqual(rec, before) {
				t.Fatalf("record after Eval %v, want %v", rec, before)
			}
			if p, _ := msg.Payload(); string(p) != tt.in {
				t.Fatalf("payload after Eval %s", p)
			}
		})
	}
}

func TestExprEvalErrors(t *testing.T) {
	tests := []struct{ name, expr, in, want string }{
		{"not an object", `1`, `[1]`, "record is a JSON array, not an object"},
		{"not json", `1`, `x`, "invalid JSON: "},
		{"runtime error", `a.b.c()`, `{"a":{}}`, `(in expression "a.b.c()")`},
		{"merge of a non-object", `merge($env, 1)`, `{}`, `merge: argument 2 is a number, want an object (1:1) (in expression "merge($env, 1)")`},
		{"long expression", "{\n  \"a\": int(a),\n  \"b\": b, \"c\": c, \"d\": d, \"e\": e, \"f\": f, \"g\": g\n}", `{"a":"x"}`,
			`invalid operation: int(x) (2:8) (in expression "{ \"a\": int(a), \"b\": b, \"c\": c, \"d\": d, \"e\": e, \"f\": f, \"g\": …")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := CompileExpr(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Eval(NewMessage([]byte(tt.in)))
			if !IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want permanent %q...", err, tt.want)
			}
		})
	}
}

func TestExprRun(t *testing.T) {
	e, err := CompileExpr(`{"seq": seq, "x": x}`)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]any{"seq": 4}
	got, err := e.Run(env)
	if err != nil || !reflect.DeepEqual(got, map[string]any{"seq": 4, "x": nil}) {
		t.Fatalf("got %#v, %v", got, err)
	}
}

func TestCompileExprError(t *testing.T) {
	for _, src := range []string{`1 +`, `{"a": }`, `a ===`, `foo(`} {
		if _, err := CompileExpr(src); err == nil {
			t.Errorf("CompileExpr(%q): no error", src)
		}
	}
	_, err := CompileExpr(`1 +`)
	if !strings.Contains(err.Error(), "(1:") {
		t.Errorf("compile error does not locate the problem: %v", err)
	}
}

// merge($env, ...) in an expression that also reads msg gives the record's
// fields, not msg.
func TestMergeEnvWithoutMsg(t *testing.T) {
	e, err := CompileExpr(`merge($env, {"subject": msg.subject})`)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMessage([]byte(`{"a": 1}`))
	m.Meta.Subject = "s.t"
	got, err := e.Eval(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"a": int64(1), "subject": "s.t"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", got, want)
	}
}
