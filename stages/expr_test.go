package stages

import (
	"reflect"
	"slices"
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
		{"own msg field beside msg", `[$env["msg"], msg.key, $env.msg]`, `{"msg":"own"}`, []any{"own", "key1", "own"}},
		{"merge keeps the own msg field", `merge($env, {"k": msg.key})`, `{"msg":"own"}`, map[string]any{"msg": "own", "k": "key1"}},
		{"msg is not a field of $env", `merge($env, {"k": msg.key})`, `{"a":1}`, map[string]any{"a": int64(1), "k": "key1"}},
		{"let msg", `let msg = 2; msg * 3`, `{"msg":"own"}`, 6},
		{"field with spaces", `$env["Order ID"] + "!"`, `{"Order ID":"o-1"}`, "o-1!"},
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

// A field named like a builtin is the field where it is not called, and
// the builtin where it is.
func TestExprFieldNamedLikeBuiltin(t *testing.T) {
	tests := []struct {
		name, expr, in string
		want           any
	}{
		{"int of count", `int(count)`, `{"count":"3"}`, 3},
		{"compare count", `count > 1`, `{"count":2}`, true},
		{"len in a map", `{"n": len}`, `{"len":4}`, map[string]any{"n": int64(4)}},
		{"arithmetic", `sum + max - min`, `{"sum":10,"max":5,"min":1}`, 14},
		{"type and keys", `[type, keys, values]`, `{"type":"t","keys":["k"],"values":[1]}`, []any{"t", []any{"k"}, []any{int64(1)}}},
		{"time names", `[now, date, duration]`, `{"now":1,"date":"d","duration":"1s"}`, []any{int64(1), "d", "1s"}},
		{"merge as a field", `merge`, `{"merge":"yes"}`, "yes"},
		{"missing field is nil", `count == nil`, `{}`, true},
		{"call is the builtin", `count(items, # > 1)`, `{"items":[1,2,3],"count":0}`, 2},
		{"builtin called on the field", `len(keys)`, `{"keys":[1,2]}`, 2},
		{"field inside a predicate", `filter(items, # > min)`, `{"items":[1,2,3],"min":1}`, []any{int64(2), int64(3)}},
		{"pipe call", `items | count(# > 1)`, `{"items":[1,2,3]}`, 2},
		{"member of a field", `max.value`, `{"max":{"value":7}}`, int64(7)},
		{"merge still merges", `merge({"a": 1}, {"b": len})`, `{"len":2}`, map[string]any{"a": 1, "b": int64(2)}},
		{"$env spelled out", `$env["count"] + 1`, `{"count":1}`, 2},
		{"bare map key", `{count: count}`, `{"count":1}`, map[string]any{"count": int64(1)}},
		{"let of a field", `let n = len; n + 1`, `{"len":1}`, 2},
		{"in a reduce", `reduce(items, #acc + # * max, 0)`, `{"items":[1,2],"max":10}`, 30},
		{"in a conditional", `sum > 0 ? sum : -sum`, `{"sum":-4}`, int64(4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := CompileExpr(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Eval(NewMessage([]byte(tt.in)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v (%T), want %#v", got, got, tt.want)
			}
		})
	}
}

// Calling a function that does not exist fails to compile, naming it and
// where it is.
func TestCompileExprUnknownFunction(t *testing.T) {
	tests := []struct{ name, expr, want string }{
		{"unknown", `nosuchfunc(x) > 1`, "unknown function nosuchfunc (1:1)"},
		{"a typo is named", `a and lenn(b) > 1`, "unknown function lenn (did you mean len?) (1:7)"},
		{"typo of merge", `mrege($env, {})`, "unknown function mrege (did you mean merge?)"},
		{"second line", "1 +\n  foo(2)", "unknown function foo (2:3)"},
		{"in a predicate", `filter(items, nope(#))`, "unknown function nope"},
		{"piped", `items | frobnicate()`, "unknown function frobnicate"},
		{"msg called", `msg()`, "unknown function msg (1:1)"},
		{"msg declared twice", `let msg = 1; let msg = 2; msg`, "cannot redeclare variable msg (1:18)"},
		{"a misspelt predicate", `{"n": cuont(items, # > 1)}`, "unknown function cuont (did you mean count?) (1:7)"},
		{"a misspelt predicate after a method", `a.b() + fitler(items, # > 1)`, "unknown function fitler (did you mean filter?) (1:9)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileExpr(tt.expr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CompileExpr(%q) = %v, want %q", tt.expr, err, tt.want)
			}
		})
	}
	// A method on a value is looked up when the expression runs.
	if _, err := CompileExpr(`a.b.c()`); err != nil {
		t.Fatalf("method call: %v", err)
	}
}

func TestExprFunctions(t *testing.T) {
	fns := ExprFunctions()
	for _, want := range []string{"merge", "len", "count", "now"} {
		if !slices.Contains(fns, want) {
			t.Errorf("ExprFunctions() has no %s: %v", want, fns)
		}
	}
}

// BenchmarkExprEval measures an expression over one record, as a filter
// runs it on each message.
func BenchmarkExprEval(b *testing.B) {
	for _, bc := range []struct{ name, expr string }{
		{"fields", `amount > 10 && status == "paid"`},
		{"builtin names", `count > 1 && len(items) > 0`},
		{"msg", `msg.subject != "" && amount > 10`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := CompileExpr(bc.expr)
			if err != nil {
				b.Fatal(err)
			}
			m := NewMessage([]byte(`{"amount": 12, "status": "paid", "count": 2, "items": [1]}`))
			if _, err := m.Record(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Eval(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzCompileExpr: compiling never panics, and an expression that
// compiles evaluates over a record, or fails on it, without panicking.
func FuzzCompileExpr(f *testing.F) {
	for _, src := range []string{
		`int(count)`, `count > 1`, `{"n": len}`, `count(items, # > 1)`, `nosuchfunc(x) > 1`,
		`merge($env, {"a": msg.key})`, `let msg = 1; msg`, `$env["msg"]`, `cuont(items, # > 1)`,
		`items | filter(# > min) | map(# * max)`, `a.b.c()`, `reduce(items, #acc + #, 0)`,
	} {
		f.Add(src)
	}
	rec := []byte(`{"count": 2, "len": 3, "items": [1, 2, 3], "min": 1, "max": 9, "msg": "own", "a": {"b": 1}}`)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := CompileExpr(src)
		if err != nil {
			return
		}
		_, _ = e.Eval(NewMessage(rec))
	})
}
