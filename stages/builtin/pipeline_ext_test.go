package builtin_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// Validation with the built-in registry lets stages read the routes a
// switch declares, and only those.
func TestSwitchRoutesInPipeline(t *testing.T) {
	const head = `name: routed
stages:
  - {name: gen, source: generate, with: {count: 1}}
  - name: sw
    transform: switch
    with:
      cases:
        - {when: 'seq % 2 == 0', route: even}
        - {when: 'seq > 100', route: big}
      default: odd
`
	tests := []struct {
		name  string
		sinks string
		want  string // a problem, "" for none
	}{
		{"every route", "  - {name: a, from: sw.even, sink: discard}\n  - {name: b, from: [sw.big, sw.odd], sink: discard}\n", ""},
		{"unknown route", "  - {name: a, from: sw.nope, sink: discard}\n",
			`routed.yaml:11:21: stage "a": from "sw.nope": transform "switch" has no route "nope": read from "sw.even", "sw.big", "sw.odd"`},
		{"no default output", "  - {name: a, from: sw, sink: discard}\n",
			`routed.yaml:11:21: stage "a": from "sw": transform "switch" has only routes: read from "sw.even", "sw.big", "sw.odd"`},
		{"the stage listed before", "  - {name: a, sink: discard}\n",
			`transform "switch" has only routes: read from "sw.even", "sw.big", "sw.odd"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pipeline.Parse("routed.yaml", []byte(head+tt.sinks), pipeline.Options{Registry: builtin.NewRegistry()})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("parse: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("parse: got %v, want a problem %q", err, tt.want)
			}
		})
	}
}

// The example in the doc of each of these types is a valid pipeline
// fragment.
func TestTransformDocExamples(t *testing.T) {
	reg := builtin.NewRegistry()
	for _, name := range []string{"jq", "switch", "template", "parse", "delay"} {
		t.Run(name, func(t *testing.T) {
			spec, err := reg.LookupRole(stages.RoleTransform, name)
			if err != nil {
				t.Fatal(err)
			}
			_, example, ok := strings.Cut(spec.Doc, "Example:\n\n")
			if !ok {
				t.Fatal("no example")
			}
			var b strings.Builder
			b.WriteString("name: example\nstages:\n  - {name: src, source: generate, with: {count: 1}}\n")
			for line := range strings.Lines(example) {
				b.WriteString("  " + strings.TrimPrefix(line, "    "))
			}
			if name != "switch" {
				b.WriteString("\n  - {name: out, sink: discard}\n")
			}
			if _, err := pipeline.Parse("example.yaml", []byte(b.String()), pipeline.Options{Registry: reg}); err != nil {
				t.Fatalf("%s\n%v", b.String(), err)
			}
		})
	}
}
