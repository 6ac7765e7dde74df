package core

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/stages"
)

func filterSpec() stages.Spec {
	return stages.Spec{
		Name:      "filter",
		Stateless: true,
		Summary:   "Keep the records for which an expression is true",
		Doc: `Evaluates expr over each record, with the record's fields as top-level ` +
			`names and msg as the metadata. true passes the message on untouched ` +
			`(its bytes are not re-encoded); false drops it, counted as filtered. A ` +
			`result that is not a boolean, a record that is not a JSON object, or ` +
			`an expression that fails sends the message to the dead-letter stream.

Example:

    - name: big
      transform: filter
      with:
        expr: 'amount >= 100 && msg.headers["X-Region"] == "eu"'`,
		Params: []stages.Param{
			{Name: "expr", Type: stages.TypeExpr, Required: true, Doc: "Boolean expression; true keeps the record."},
		},
		NewTransform: newFilterTransform,
	}
}

// filterTransform passes on the inputs for which expr is true.
type filterTransform struct {
	expr *stages.Expr
}

var _ stages.Transform = (*filterTransform)(nil)

func newFilterTransform(p stages.Params, _ stages.Info) (stages.Transform, error) {
	e, err := stages.CompileParam(p, "expr")
	if err != nil {
		return nil, err
	}
	return &filterTransform{expr: e}, nil
}

func (t *filterTransform) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	v, err := t.expr.Eval(in)
	if err != nil {
		return out, err
	}
	keep, ok := v.(bool)
	if !ok {
		return out, stages.Permanent(fmt.Errorf("filter expression %q produced %T, want bool", t.expr, v))
	}
	if keep {
		out = append(out, in)
	}
	return out, nil
}

func (t *filterTransform) Close(context.Context) error { return nil }
