package pipeline

import (
	"errors"
	"testing"
)

const graphSrc = `name: orders-etl
stages:
  - {name: read, source: file, with: {path: in.csv}}
  - {name: clean, transform: route, with: {routes: [big]}}
  - {name: end, sink: out, from: [clean.big, read]}
  - {name: audit, sink: file, from: read, with: {path: audit.jsonl}}
`

func TestGraph(t *testing.T) {
	p := mustParse(t, graphSrc, nil)
	tests := []struct {
		format, want string
	}{{
		format: "mermaid",
		want: `flowchart LR
    s0["read<br/>source: file"]
    s1["clean<br/>transform: route"]
    s2["end<br/>sink: out"]
    s3["audit<br/>sink: file"]
    s0 --> s1
    s1 -->|big| s2
    s0 --> s2
    s0 --> s3
`,
	}, {
		format: "dot",
		want: `digraph "orders-etl" {
    rankdir=LR;
    node [shape=box];
    "read" [label="read\nsource: file"];
    "clean" [label="clean\ntransform: route"];
    "end" [label="end\nsink: out"];
    "audit" [label="audit\nsink: file"];
    "read" -> "clean";
    "clean" -> "end" [label="big"];
    "read" -> "end";
    "read" -> "audit";
}
`,
	}}
	for _, tt := range tests {
		got, err := p.Graph(tt.format)
		if err != nil || got != tt.want {
			t.Errorf("Graph(%q) = %v\n%s\nwant:\n%s", tt.format, err, got, tt.want)
		}
	}
}

func TestGraphUnknownFormat(t *testing.T) {
	p := mustParse(t, graphSrc, nil)
	got, err := p.Graph("svg")
	if !errors.Is(err, ErrUnknownFormat) || got != "" {
		t.Errorf("Graph(svg) = %q, %v, want an error wrapping ErrUnknownFormat", got, err)
	}
	if want := `sluice: unknown graph format "svg" (want mermaid or dot)`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}
