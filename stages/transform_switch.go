package stages

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Keys of one case of a switch.
const (
	caseWhen  = "when"
	caseRoute = "route"
)

func switchSpec() Spec {
	return Spec{
		Name:    "switch",
		Summary: "Send each record on the route of the first case whose condition holds",
		Doc: `Evaluates the when expression of each case in order over the record ` +
			`(fields as top-level names, msg as the metadata) and sends the message, ` +
			`untouched, on the route of the first case that is true; when none is, ` +
			`on the default route, or, without default, it is dropped and counted as ` +
			`filtered. A stage reads a route with from: STAGE.ROUTE; a switch has no ` +
			`output of its own, so from: STAGE alone is an error, as is a route that ` +
			`no case or default names. Several cases may share a route.

A when that gives something other than true or false, or fails on the ` +
			`record, or a record that is not a JSON object, sends the message to the ` +
			`dead-letter stream; the error names the case.

Example:

    - name: triage
      transform: switch
      with:
        cases:
          - {when: 'level == "error"', route: errors}
          - {when: 'amount >= 1000', route: big}
        default: rest
    - name: alert
      from: triage.errors
      sink: stdout`,
		Params: []Param{
			{Name: "cases", Type: TypeMapList, Required: true, Doc: "Ordered list of cases, each {when: EXPRESSION, route: NAME}. A route is letters, digits, '_' and '-', not beginning with '_'."},
			{Name: "default", Type: TypeString, Doc: "Route of the records no case matches; without it they are filtered."},
		},
		Check:        checkSwitch,
		Routes:       switchRoutes,
		NewTransform: newSwitchTransform,
	}
}

// switchCase is one compiled case.
type switchCase struct {
	when  *Expr
	route string
}

func checkSwitch(p Params) error {
	_, err := compileSwitchCases(p)
	return err
}

// compileSwitchCases checks the parameters and compiles each case.
func compileSwitchCases(p Params) ([]switchCase, error) {
	raw := p.MapList("cases")
	if len(raw) == 0 {
		return nil, paramError("cases", "want at least one case")
	}
	cases := make([]switchCase, len(raw))
	for i, c := range raw {
		var unknown []string
		for k := range c {
			if k != caseWhen && k != caseRoute {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return nil, paramError("cases", "item %d: unknown key %q: a case has only when and route", i+1, unknown[0])
		}
		src, ok := c[caseWhen]
		if !ok || strings.TrimSpace(src) == "" {
			return nil, paramError("cases", "item %d: missing when", i+1)
		}
		route, ok := c[caseRoute]
		if !ok || route == "" {
			return nil, paramError("cases", "item %d: missing route", i+1)
		}
		if !ValidRoute(route) {
			return nil, paramError("cases", "item %d: route %q: want letters, digits, '_' and '-', not beginning with '_'", i+1, route)
		}
		e, err := CompileExpr(src)
		if err != nil {
			return nil, paramError("cases", "item %d: when does not compile: %s", i+1, oneLine(err.Error()))
		}
		cases[i] = switchCase{when: e, route: route}
	}
	if p.Has("default") && !ValidRoute(p.String("default")) {
		return nil, paramError("default", "route %q: want letters, digits, '_' and '-', not beginning with '_'", p.String("default"))
	}
	return cases, nil
}

// switchRoutes lists the routes of the cases, then the default, each once.
func switchRoutes(p Params) []string {
	var routes []string
	for _, c := range p.MapList("cases") {
		if r := c[caseRoute]; !slices.Contains(routes, r) {
			routes = append(routes, r)
		}
	}
	if p.Has("default") {
		if r := p.String("default"); !slices.Contains(routes, r) {
			routes = append(routes, r)
		}
	}
	return routes
}

// switchTransform routes each input by the first case that holds.
type switchTransform struct {
	cases []switchCase
	def   string // "" for none: filter
}

var _ Transform = (*switchTransform)(nil)

func newSwitchTransform(p Params, _ Info) (Transform, error) {
	cases, err := compileSwitchCases(p)
	if err != nil {
		return nil, err
	}
	return &switchTransform{cases: cases, def: p.String("default")}, nil
}

func (t *switchTransform) Process(_ context.Context, in *Message, out []*Message) ([]*Message, error) {
	if _, err := in.Record(); err != nil {
		return out, err // not a record: no case is to blame
	}
	for i := range t.cases {
		c := &t.cases[i]
		v, err := c.when.Eval(in)
		if err != nil {
			return out, fmt.Errorf("switch: case %d (route %s): %w", i+1, c.route, err)
		}
		match, ok := v.(bool)
		if !ok {
			return out, Permanent(fmt.Errorf("switch: case %d (route %s): when %q produced %s, want true or false", i+1, c.route, shortSource(c.when.String()), jsonKindOf(v)))
		}
		if match {
			in.Route = c.route
			return append(out, in), nil
		}
	}
	if t.def == "" {
		return out, nil
	}
	in.Route = t.def
	return append(out, in), nil
}

func (t *switchTransform) Close(context.Context) error { return nil }

// jsonKindOf names the kind of a value an expression produced, in JSON
// terms where there is one.
func jsonKindOf(v any) string {
	switch v.(type) {
	case nil, bool, string, []any, map[string]any,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return "a JSON " + jsonKind(v)
	}
	return fmt.Sprintf("a %T", v)
}
