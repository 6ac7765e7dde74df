package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

// TestChains: which stages run fused, and each reason a stream stays.
func TestChains(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // each chain as "a>b>c"
	}{
		{"source to sink", `
  - {name: in, source: gen}
  - {name: m, transform: map, with: {expr: 'x'}}
  - {name: f, transform: filter, with: {expr: 'true'}}
  - {name: out, sink: out}`, []string{"in>m>f>out"}},
		{"source alone to sink", `
  - {name: in, source: gen}
  - {name: out, sink: out}`, []string{"in>out"}},
		{"off", `
  - {name: in, source: gen}
  - {name: out, sink: out}
settings: {fusion: "off"}`, nil},
		{"fan-out", `
  - {name: in, source: gen}
  - {name: a, sink: out}
  - {name: b, sink: out, from: in}`, nil},
		{"fan-out after a transform", `
  - {name: in, source: gen}
  - {name: m, transform: map, with: {expr: 'x'}}
  - {name: a, sink: out}
  - {name: b, sink: out, from: m}`, []string{"in>m"}},
		{"fan-in", `
  - {name: in, source: gen}
  - {name: in2, source: gen}
  - {name: out, sink: out, from: [in, in2]}`, nil},
		{"routes", `
  - {name: in, source: gen}
  - {name: r, transform: route, with: {routes: [""]}}
  - {name: out, sink: out}`, nil},
		{"replicas", `
  - {name: in, source: gen}
  - {name: m, transform: map, replicas: 2, with: {expr: 'x'}}
  - {name: out, sink: out}`, nil},
		{"parallel workers head a chain", `
  - {name: in, source: gen}
  - {name: m, transform: map, replicas: 2, with: {expr: 'x'}}
  - {name: f, transform: filter, replicas: 2, with: {expr: 'true'}}
  - {name: out, sink: out, replicas: 2}`, []string{"m>f>out"}},
		{"after a stream a transform heads a chain", `
  - {name: in, source: gen}
  - {name: m, transform: map, with: {expr: 'x'}, buffer: durable}
  - {name: f, transform: filter, with: {expr: 'true'}}
  - {name: out, sink: out}`, []string{"m>f>out"}},
		{"after routes", `
  - {name: in, source: gen}
  - {name: r, transform: route, with: {routes: [a]}}
  - {name: m, transform: map, from: r.a, with: {expr: 'x'}}
  - {name: out, sink: out}`, []string{"m>out"}},
		{"routes end a chain", `
  - {name: in, source: gen}
  - {name: m, transform: map, with: {expr: 'x'}}
  - {name: r, transform: sw, with: {routes: [a]}}
  - {name: out, sink: out, from: r.a}`, []string{"in>m>r"}},
		{"after a repartition", `
  - {name: in, source: gen}
  - {name: k, transform: map, key: 'x', with: {expr: 'x'}}
  - {name: m, transform: map, with: {expr: 'x'}}
  - {name: out, sink: out}`, nil},
		{"stateful transform", `
  - {name: in, source: gen}
  - {name: s, transform: tally}
  - {name: out, sink: out}`, []string{"s>out"}},
		{"buffer durable", `
  - {name: in, source: gen}
  - {name: m, transform: map, with: {expr: 'x'}}
  - {name: out, sink: out, buffer: durable}`, []string{"in>m"}},
		{"key", `
  - {name: in, source: gen}
  - {name: m, transform: map, key: 'x', with: {expr: 'x'}}
  - {name: out, sink: out}`, nil},
		{"event time on the source", `
  - {name: in, source: gen, event_time: 'x'}
  - {name: out, sink: out}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, "name: p\nstages:"+tt.src+"\n", nil)
			var got []string
			for _, c := range p.Chains() {
				var names []string
				for _, s := range c {
					names = append(names, s.Name)
				}
				got = append(got, strings.Join(names, ">"))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("chains %q, want %q", got, tt.want)
			}
		})
	}
}

// TestGraphFused: a fused chain is a box of its own, its edges thick.
func TestGraphFused(t *testing.T) {
	p := mustParse(t, `name: p
stages:
  - {name: in, source: gen}
  - {name: m, transform: map, with: {expr: 'x'}}
  - {name: out, sink: out}
  - {name: audit, sink: out, from: m, buffer: durable}
`, nil)
	got, err := p.Graph("mermaid")
	want := `flowchart LR
    subgraph f0 ["fused"]
        s0["in<br/>source: gen"]
        s1["m<br/>transform: map"]
    end
    s2["out<br/>sink: out"]
    s3["audit<br/>sink: out"]
    s0 ==> s1
    s1 --> s2
    s1 --> s3
`
	if err != nil || got != want {
		t.Errorf("mermaid: %v\n%s\nwant:\n%s", err, got, want)
	}
	got, err = p.Graph("dot")
	want = `digraph "p" {
    rankdir=LR;
    node [shape=box];
    subgraph cluster_fused0 {
        label="fused";
        style=dashed;
        "in" [label="in\nsource: gen"];
        "m" [label="m\ntransform: map"];
    }
    "out" [label="out\nsink: out"];
    "audit" [label="audit\nsink: out"];
    "in" -> "m" [style=bold];
    "m" -> "out";
    "m" -> "audit";
}
`
	if err != nil || got != want {
		t.Errorf("dot: %v\n%s\nwant:\n%s", err, got, want)
	}
}
