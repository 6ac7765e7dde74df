package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// testRegistry returns a registry of small test-only types, independent of
// the built-in ones: sources gen and file, transforms map and filter
// (stateless), tally (not stateless), route and sw (whose outputs take
// the routes they list; sw is stateless), sinks file and out.
func testRegistry(t testing.TB) *stages.Registry {
	t.Helper()
	newSource := func(stages.Params, stages.Info) (stages.Source, error) { return nil, nil }
	newTransform := func(stages.Params, stages.Info) (stages.Transform, error) { return nil, nil }
	newSink := func(stages.Params, stages.Info) (stages.Sink, error) { return nil, nil }
	reg := stages.NewRegistry()
	for _, spec := range []stages.Spec{
		{Name: "gen", NewSource: newSource, Params: []stages.Param{
			{Name: "count", Type: stages.TypeInt, Default: 0},
		}},
		{Name: "file", NewSource: newSource, Params: []stages.Param{
			{Name: "path", Type: stages.TypeString, Required: true},
			{Name: "format", Type: stages.TypeString, Enum: []string{"jsonl", "csv"}, Default: "jsonl"},
		}},
		{Name: "map", NewTransform: newTransform, Stateless: true, Params: []stages.Param{
			{Name: "expr", Type: stages.TypeExpr, Required: true},
			{Name: "n", Type: stages.TypeInt},
		}},
		{Name: "filter", NewTransform: newTransform, Stateless: true, Params: []stages.Param{
			{Name: "expr", Type: stages.TypeExpr, Required: true},
		}},
		{Name: "tally", NewTransform: newTransform},
		{Name: "route", NewTransform: newTransform, Params: []stages.Param{
			{Name: "routes", Type: stages.TypeStringList, Required: true},
		}, Routes: func(p stages.Params) []string { return p.Strings("routes") }},
		{Name: "sw", NewTransform: newTransform, Stateless: true, Params: []stages.Param{
			{Name: "routes", Type: stages.TypeStringList, Required: true},
		}, Routes: func(p stages.Params) []string { return p.Strings("routes") }},
		{Name: "file", NewSink: newSink, Params: []stages.Param{
			{Name: "path", Type: stages.TypeString, Required: true},
			{Name: "mode", Type: stages.TypeString, Enum: []string{"overwrite", "append"}},
		}, Check: func(p stages.Params) error {
			if strings.HasSuffix(p.String("path"), "/") {
				return &stages.ParamError{Param: "path", Err: fmt.Errorf("%w: path: is a directory", stages.ErrInvalidParam)}
			}
			if p.String("path") == "check" {
				return fmt.Errorf("%w: the check failed", stages.ErrInvalidParam)
			}
			return nil
		}},
		{Name: "out", NewSink: newSink},
	} {
		if err := reg.Register(spec); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// env returns a LookupEnv over vars, so that tests never read the process
// environment.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// parse parses src as the file p.yaml with the test registry.
func parse(t testing.TB, src string, vars map[string]string) (*Pipeline, error) {
	t.Helper()
	return Parse("p.yaml", []byte(src), Options{Registry: testRegistry(t), LookupEnv: env(vars)})
}

// mustParse parses src and fails the test on error.
func mustParse(t testing.TB, src string, vars map[string]string) *Pipeline {
	t.Helper()
	p, err := parse(t, src, vars)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

// problems parses src, which must not validate, and returns its problems.
func problems(t testing.TB, src string, vars map[string]string) Problems {
	t.Helper()
	p, err := parse(t, src, vars)
	if p != nil {
		t.Errorf("Parse returned a pipeline with error %v", err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse error = %v, want one matching ErrInvalid", err)
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse error %T is not Problems", err)
	}
	return ps
}
