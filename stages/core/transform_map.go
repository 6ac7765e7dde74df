package core

import (
	"context"

	"github.com/sluicehq/sluice/stages"
)

func mapSpec() stages.Spec {
	return stages.Spec{
		Name:      "map",
		Stateless: true,
		Summary:   "Replace each record with the result of an expression",
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
		Params: []stages.Param{
			{Name: "expr", Type: stages.TypeExpr, Required: true, Doc: "Expression whose result is the new record."},
		},
		NewTransform: newMapTransform,
	}
}

// mapTransform replaces the record of its input with the result of expr.
type mapTransform struct {
	expr *stages.Expr
}

var _ stages.Transform = (*mapTransform)(nil)

func newMapTransform(p stages.Params, _ stages.Info) (stages.Transform, error) {
	e, err := stages.CompileParam(p, "expr")
	if err != nil {
		return nil, err
	}
	return &mapTransform{expr: e}, nil
}

func (t *mapTransform) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	v, err := t.expr.Eval(in)
	if err != nil {
		return out, err
	}
	in.SetValue(v)
	return append(out, in), nil
}

func (t *mapTransform) Close(context.Context) error { return nil }
