package core

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// Keys of one case of a switch.
const (
	caseWhen  = "when"
	caseRoute = "route"
)

func switchSpec() stages.Spec {
	return stages.Spec{
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
		Params: []stages.Param{
			{Name: "cases", Type: stages.TypeMapList, Required: true, Doc: "Ordered list of cases, each {when: EXPRESSION, route: NAME}. A route is letters, digits, '_' and '-', not beginning with '_'."},
			{Name: "default", Type: stages.TypeString, Doc: "Route of the records no case matches; without it they are filtered."},
		},
		Check:        checkSwitch,
		Routes:       switchRoutes,
		Stateless:    true,
		NewTransform: newSwitchTransform,
	}
}

// switchCase is one compiled case.
type switchCase struct {
	when  *stages.Expr
	route string
}

func checkSwitch(p stages.Params) error {
	_, err := compileSwitchCases(p)
	return err
}

// compileSwitchCases checks the parameters and compiles each case.
func compileSwitchCases(p stages.Params) ([]switchCase, error) {
	raw := p.MapList("cases")
	if len(raw) == 0 {
		return nil, stages.ParamErrorf("cases", "want at least one case")
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
			return nil, stages.ParamErrorf("cases", "item %d: unknown key %q: a case has only when and route", i+1, unknown[0])
		}
		src, ok := c[caseWhen]
		if !ok || strings.TrimSpace(src) == "" {
			return nil, stages.ParamErrorf("cases", "item %d: missing when", i+1)
		}
		route, ok := c[caseRoute]
		if !ok || route == "" {
			return nil, stages.ParamErrorf("cases", "item %d: missing route", i+1)
		}
		if !stages.ValidRoute(route) {
			return nil, stages.ParamErrorf("cases", "item %d: route %q: want letters, digits, '_' and '-', not beginning with '_'", i+1, route)
		}
		e, err := stages.CompileExpr(src)
		if err != nil {
			return nil, stages.ParamErrorf("cases", "item %d: when does not compile: %s", i+1, errtext.OneLine(err.Error()))
		}
		cases[i] = switchCase{when: e, route: route}
	}
	if p.Has("default") && !stages.ValidRoute(p.String("default")) {
		return nil, stages.ParamErrorf("default", "route %q: want letters, digits, '_' and '-', not beginning with '_'", p.String("default"))
	}
	return cases, nil
}

// switchRoutes lists the routes of the cases, then the default, each once.
func switchRoutes(p stages.Params) []string {
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

var _ stages.Transform = (*switchTransform)(nil)

func newSwitchTransform(p stages.Params, _ stages.Info) (stages.Transform, error) {
	cases, err := compileSwitchCases(p)
	if err != nil {
		return nil, err
	}
	return &switchTransform{cases: cases, def: p.String("default")}, nil
}

func (t *switchTransform) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
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
			return out, stages.Permanent(fmt.Errorf("switch: case %d (route %s): when %q produced %s, want true or false", i+1, c.route, errtext.ShortSource(c.when.String()), errtext.KindOf(v)))
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
