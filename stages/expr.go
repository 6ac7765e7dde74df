package stages

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser/lexer"
	"github.com/expr-lang/expr/vm"

	"github.com/sluicehq/sluice/internal/suggest"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// MsgVar is the name under which an expression sees a message's metadata:
// msg.subject, msg.headers (name to first value), msg.key, msg.event_time,
// msg.stream, msg.sequence, msg.deliveries.
const MsgVar = "msg"

// msgKey is the key of the record map under which the msg variable is
// lent to an expression while it runs: the patcher renames msg to it, so
// that a field of the record named msg stays the field ($env["msg"]). A
// JSON object has no such key in practice; one that does gets it back.
const msgKey = "\x00sluice.msg"

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
//
// A name that is not called is a field of the record even when a builtin
// has that name: count > 1 reads the field count, while count(items, # > 1)
// calls the builtin. Calling a function that does not exist is an error
// here, not when the expression runs.
func CompileExpr(src string) (*Expr, error) {
	p := &exprPatcher{}
	// The environment is a record, map[string]any: told so, the compiler
	// reads a field with a map index rather than through reflection
	// (OpLoadFast), at half the cost and no allocation.
	prog, err := expr.Compile(src, expr.Env(map[string]any{}), expr.AllowUndefinedVariables(), mergeFunc, expr.Patch(p))
	if p.err != nil {
		// The checker does not take a call of an unknown name for a
		// mistake: ours comes first, as the likelier cause of any other.
		return nil, p.err.Bind(file.NewSource(src))
	}
	if err != nil {
		// The parser reads the arguments of a predicate such as count
		// only when it knows the name: a misspelt one fails on its #.
		if call := unknownCall(src); call != nil {
			return nil, call
		}
		var fe *file.Error
		if errors.As(err, &fe) {
			fe.Message = strings.ReplaceAll(fe.Message, msgKey, MsgVar) // as the source says
		}
		return nil, err
	}
	return &Expr{src: src, prog: prog, usesMsg: p.usesMsg}, nil
}

// keywords are the words of expr-lang that may come before a bracket
// without being a call.
var keywords = []string{"if", "else", "let", "not", "in", "and", "or", "matches", "contains", "startsWith", "endsWith", "true", "false", "nil"}

// unknownCall returns the error of the first name in src that is called
// but names no function, or nil: what the patcher reports, for an
// expression that does not parse.
func unknownCall(src string) *file.Error {
	source := file.NewSource(src)
	tokens, err := lexer.Lex(source)
	if err != nil {
		return nil
	}
	for i := 0; i+1 < len(tokens); i++ {
		t := tokens[i]
		if t.Kind != lexer.Identifier || !tokens[i+1].Is(lexer.Bracket, "(") || isFunction(t.Value) || slices.Contains(keywords, t.Value) {
			continue
		}
		if i > 0 && tokens[i-1].Is(lexer.Operator, ".", "?.") {
			continue // a method
		}
		e := &file.Error{Location: t.Location, Message: unknownFunction(t.Value)}
		return e.Bind(source)
	}
	return nil
}

// unknownFunction is the message for a call of name, which is no function.
func unknownFunction(name string) string {
	return fmt.Sprintf("unknown function %s%s", name, suggest.Hint(name, ExprFunctions()...))
}

// exprFunctions are the names of the functions that expressions may call
// besides expr-lang's builtins.
var exprFunctions = []string{"merge"}

// ExprFunctions returns the names of every function an expression may
// call, expr-lang's builtins and sluice's own, sorted.
func ExprFunctions() []string {
	names := slices.Clone(exprFunctions)
	for _, b := range builtin.Builtins {
		names = append(names, b.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// isFunction reports whether name is a builtin or one of [exprFunctions]:
// a name the checker would take for a function, not a record field.
func isFunction(name string) bool {
	if _, ok := builtin.Index[name]; ok {
		return true
	}
	return slices.Contains(exprFunctions, name)
}

// exprPatcher runs over the tree once, before it is type-checked. It turns
// a name that is not called but names a function into a look-up of the
// record field ($env["name"]), reports a call of a name that is no
// function, and notes whether the expression reads msg. The walk is
// post-order: a callee is visited before its call, so a callee rewritten
// as a field is put back when its call is visited.
type exprPatcher struct {
	usesMsg   bool
	err       *file.Error
	rewritten map[ast.Node]*ast.IdentifierNode // $env["x"] nodes made here, to the name each replaced
}

// Visit implements [ast.Visitor].
func (p *exprPatcher) Visit(n *ast.Node) {
	switch node := (*n).(type) {
	case *ast.IdentifierNode:
		switch {
		case node.Value == MsgVar:
			node.Value = msgKey
			p.usesMsg = true
		case isFunction(node.Value):
			field := &ast.MemberNode{
				Node:     &ast.IdentifierNode{Value: "$env"},
				Property: &ast.StringNode{Value: node.Value},
			}
			field.SetLocation(node.Location())
			field.Node.SetLocation(node.Location())
			field.Property.SetLocation(node.Location())
			if p.rewritten == nil {
				p.rewritten = make(map[ast.Node]*ast.IdentifierNode)
			}
			p.rewritten[field] = node
			*n = field
		}
	case *ast.VariableDeclaratorNode:
		if node.Name == MsgVar {
			node.Name = msgKey // let msg = ...: its uses were renamed
		}
	case *ast.CallNode:
		if id, ok := p.rewritten[node.Callee]; ok {
			node.Callee = id // a function that overrides a builtin, such as merge: called, so a function
			return
		}
		id, ok := node.Callee.(*ast.IdentifierNode)
		if !ok || p.err != nil || isFunction(id.Value) {
			return
		}
		name := id.Value
		if name == msgKey {
			name = MsgVar
		}
		p.err = &file.Error{Location: id.Location(), Message: unknownFunction(name)}
	}
}

// String returns the source of the expression.
func (e *Expr) String() string { return e.src }

// Run evaluates the expression over env, whose keys are its names. msg,
// which only [Expr.Eval] sets, is nil.
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
		prev, had := rec[msgKey]
		rec[msgKey] = msgEnv(m)
		defer func() {
			if had {
				rec[msgKey] = prev
			} else {
				delete(rec, msgKey)
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
				if _, meta := v.(metadata); meta && k == msgKey {
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
