package core

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

func splitSpec() stages.Spec {
	return stages.Spec{
		Name:      "split",
		Stateless: true,
		Summary:   "Emit one record per element of an array field",
		Doc: `Reads the array in field, which may be a dotted path through nested ` +
			`objects (a.b.c; a top-level field whose name contains dots is found ` +
			`first), and emits each element as a record of its own with the input's ` +
			`headers. An empty array emits nothing (counted as filtered); a missing ` +
			`field or one that is not an array sends the message to the dead-letter ` +
			`stream.

Example:

    - name: items
      transform: split
      with:
        field: order.items`,
		Params: []stages.Param{
			{Name: "field", Type: stages.TypeString, Required: true, Doc: "Name or dotted path of the array field to split."},
		},
		Check:        checkSplit,
		NewTransform: newSplitTransform,
	}
}

func checkSplit(p stages.Params) error {
	f := p.String("field")
	if f == "" || strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") || strings.Contains(f, "..") {
		return stages.ParamErrorf("field", "want a field name or a dotted path such as a.b (got %q)", f)
	}
	return nil
}

// splitTransform emits the elements of an array field.
type splitTransform struct {
	field string
	path  []string // field split at the dots
}

var _ stages.Transform = (*splitTransform)(nil)

func newSplitTransform(p stages.Params, _ stages.Info) (stages.Transform, error) {
	if err := checkSplit(p); err != nil {
		return nil, err
	}
	f := p.String("field")
	return &splitTransform{field: f, path: strings.Split(f, ".")}, nil
}

func (t *splitTransform) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	v, err := t.lookup(rec)
	if err != nil {
		return out, err
	}
	arr, ok := v.([]any)
	if !ok {
		return out, stages.Permanent(fmt.Errorf("split: field %q is a JSON %s, not an array", t.field, errtext.JSONKind(v)))
	}
	for _, e := range arr {
		out = append(out, in.Derive(e))
	}
	return out, nil
}

// lookup finds the field: a top-level field of that exact name, or else the
// dotted path through nested objects.
func (t *splitTransform) lookup(rec map[string]any) (any, error) {
	if v, ok := rec[t.field]; ok || len(t.path) == 1 {
		if !ok {
			return nil, stages.Permanent(fmt.Errorf("split: field %q is missing", t.field))
		}
		return v, nil
	}
	var v any = rec
	for i, name := range t.path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, stages.Permanent(fmt.Errorf("split: field %q: %q is a JSON %s, not an object", t.field, strings.Join(t.path[:i], "."), errtext.JSONKind(v)))
		}
		if v, ok = obj[name]; !ok {
			return nil, stages.Permanent(fmt.Errorf("split: field %q is missing", t.field))
		}
	}
	return v, nil
}

func (t *splitTransform) Close(context.Context) error { return nil }
