package pipeline

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// FuzzParse checks that Parse never panics, that an error is always a
// non-empty Problems and that a pipeline it accepts is complete: every
// stage has a spec, reads existing stages that are not sinks, and the graph
// is acyclic.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		designExample,
		graphSrc,
		"",
		"name: p\nstages: [{name: s, source: gen}]\n",
		"name: p\nstages:\n  - {name: s, source: gen, replicas: ${N:-1}}\n  - {name: t, sink: out, from: [s, s.r]}\n",
		"name: p\nsettings: {backoff: [1s, x], ack_wait: 1ms}\nstages: [{name: s, source: file, with: {path: $${X}}}]\n",
		"name: p\nstages:\n  - {name: a, transform: filter, from: b, with: {expr: x}}\n  - {name: b, transform: filter, with: {expr: x}}\n",
		"name: p\nstages:\n  - &s {name: s, source: gen}\n  - *s\n  - {name: t, sink: out, with: {x: *s}}\n",
		"name: p\nstages: [{name: s, source: gen, with: {count: !!int x, <<: {a: 1}}}]\n",
		"- a\n- b\n",
		"name: p\n---\nname: q\n",
		"name: [\n",
		"name: p\nstages: [{name: s, sink: file, transform: map, source: gen}]\n",
	} {
		f.Add(seed)
	}
	reg := testRegistry(f)
	opts := Options{Registry: reg, LookupEnv: env(map[string]string{"N": "2", "X": "x"})}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Parse("fuzz.yaml", []byte(src), opts)
		if err != nil {
			var ps Problems
			if p != nil || !errors.As(err, &ps) || len(ps) == 0 || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, %v: want nil and non-empty Problems", p, err)
			}
			return
		}
		if p == nil {
			t.Fatal("Parse returned nil, nil")
		}
		for _, s := range p.Stages {
			if s.Spec == nil {
				t.Fatalf("stage %q has no spec", s.Name)
			}
			for _, in := range s.From {
				if from := p.Stage(in.Stage); from == nil || from.Role == stages.RoleSink {
					t.Fatalf("stage %q reads %q, which is missing or a sink", s.Name, in)
				}
			}
		}
		if len(p.Order()) != len(p.Stages) {
			t.Fatal("Order() leaves stages out: the graph has a cycle")
		}
		for _, format := range []string{"mermaid", "dot"} {
			if _, err := p.Graph(format); err != nil {
				t.Fatal(err)
			}
		}
	})
}
