package stages

import (
	"fmt"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// MsgVar is the name under which an expression sees a message's metadata:
// msg.subject, msg.headers (name to first value), msg.key, msg.event_time,
// msg.stream, msg.sequence, msg.deliveries.
const MsgVar = "msg"

// Expr is an expr-lang expression compiled once. Names in the expression
// are looked up in the environment given to Eval; unknown names are nil.
// An Expr is not safe for concurrent use (it reuses one VM); compile one per
// worker.
type Expr struct {
	src     string
	prog    *vm.Program
	usesMsg bool
	vm      vm.VM
}

// CompileExpr compiles src. The error names the position in src.
//
// Besides expr-lang's builtins, an expression may call merge(a, b, ...),
// which returns a new object with the fields of its object arguments,
// later ones winning (nil arguments are skipped). $env is the whole
// record, so merge($env, {"amount": amount * 2}) is the record with one
// field changed.
func CompileExpr(src string) (*Expr, error) {
	tree, err := expr.Compile(src, expr.AllowUndefinedVariables(), mergeFunc)
	if err != nil {
		return nil, err
	}
	e := &Expr{src: src, prog: tree}
	v := &identFinder{name: MsgVar}
	node := tree.Node()
	ast.Walk(&node, v)
	e.usesMsg = v.found
	return e, nil
}

type identFinder struct {
	name  string
	found bool
}

func (f *identFinder) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok && id.Value == f.name {
		f.found = true
	}
}

// String returns the source of the expression.
func (e *Expr) String() string { return e.src }

// Run evaluates the expression over env.
func (e *Expr) Run(env map[string]any) (any, error) {
	return e.vm.Run(e.prog, env)
}

// Eval evaluates the expression over the record of m: the fields of a JSON
// object are top-level names, and msg holds the metadata (see [MsgVar]).
// A payload that is not a JSON object, or an expression that fails on this
// record, gives a permanent error.
func (e *Expr) Eval(m *Message) (any, error) {
	rec, err := m.Record()
	if err != nil {
		return nil, err
	}
	if e.usesMsg {
		// Borrow the record map for the msg variable rather than copy it.
		prev, had := rec[MsgVar]
		rec[MsgVar] = msgEnv(m)
		defer func() {
			if had {
				rec[MsgVar] = prev
			} else {
				delete(rec, MsgVar)
			}
		}()
	}
	out, err := e.vm.Run(e.prog, rec)
	if err != nil {
		// expr's message ends in a multi-line snippet of the source with a
		// caret; the first line says what failed. It comes first, so that
		// a long expression does not hide it.
		return nil, Permanent(fmt.Errorf("%s (in expression %q)", errtext.OneLine(err.Error()), errtext.ShortSource(e.src)))
	}
	return out, nil
}

// metadata is the type of the msg variable, so that merge($env, ...) can
// tell it from the record's fields.
type metadata map[string]any

// msgEnv builds the msg variable of an expression.
func msgEnv(m *Message) metadata {
	headers := make(map[string]any, len(m.Header))
	for k, vs := range m.Header {
		if len(vs) > 0 {
			headers[k] = vs[0]
		}
	}
	env := metadata{
		"subject":    m.Meta.Subject,
		"headers":    headers,
		"key":        m.Header.Get(HeaderKey),
		"event_time": nil,
		"stream":     m.Meta.Stream,
		"sequence":   m.Meta.Sequence,
		"deliveries": m.Meta.Deliveries,
	}
	if t := EventTimeOf(m); !t.IsZero() {
		env["event_time"] = t
	}
	return env
}

// mergeFunc is the merge function of expressions.
var mergeFunc = expr.Function("merge", func(args ...any) (any, error) {
	n := 0
	for _, a := range args {
		if m, ok := a.(map[string]any); ok {
			n += len(m)
		}
	}
	out := make(map[string]any, n)
	for i, a := range args {
		switch m := a.(type) {
		case nil:
		case map[string]any:
			for k, v := range m {
				if _, meta := v.(metadata); meta && k == MsgVar {
					continue // $env holds msg while an expression runs: not a field
				}
				out[k] = v
			}
		default:
			return nil, fmt.Errorf("merge: argument %d is a %s, want an object", i+1, errtext.JSONKind(a))
		}
	}
	return out, nil
})
