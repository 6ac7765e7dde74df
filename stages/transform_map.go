package stages

import "context"

func mapSpec() Spec {
	return Spec{
		Name:    "map",
		Summary: "Replace each record with the result of an expression",
		Doc: `Evaluates expr over each record: the record's fields are top-level ` +
			`names and msg holds the metadata (msg.headers, msg.key, msg.event_time, ` +
			`msg.subject). The result becomes the record; headers are kept. A record ` +
			`that is not a JSON object, or on which the expression fails, goes to ` +
			`the dead-letter stream.

Example:

    - name: clean
      transform: map
      with:
        expr: '{"id": int(id), "customer": upper(customer), "source": msg.headers["X-Source"]}'`,
		Params: []Param{
			{Name: "expr", Type: TypeExpr, Required: true, Doc: "Expression whose result is the new record."},
		},
		NewTransform: newMapTransform,
	}
}

// mapTransform replaces the record of its input with the result of expr.
type mapTransform struct {
	expr *Expr
}

var _ Transform = (*mapTransform)(nil)

func newMapTransform(p Params, _ Info) (Transform, error) {
	e, err := compileParam(p, "expr")
	if err != nil {
		return nil, err
	}
	return &mapTransform{expr: e}, nil
}

func (t *mapTransform) Process(_ context.Context, in *Message, out []*Message) ([]*Message, error) {
	v, err := t.expr.Eval(in)
	if err != nil {
		return out, err
	}
	in.SetValue(v)
	return append(out, in), nil
}

func (t *mapTransform) Close(context.Context) error { return nil }

// compileParam compiles the expression parameter name, which must be set.
func compileParam(p Params, name string) (*Expr, error) {
	src := p.String(name)
	if src == "" {
		return nil, paramError(name, "must not be empty")
	}
	e, err := CompileExpr(src)
	if err != nil {
		return nil, paramError(name, "expression does not compile: %s", oneLine(err.Error()))
	}
	return e, nil
}
