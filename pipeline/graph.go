package pipeline

import (
	"fmt"
	"strconv"
	"strings"
)

// Graph renders the stage graph as text: "mermaid" gives a Mermaid
// flowchart, "dot" a Graphviz digraph. Each stage is a node labelled with
// its name, role and type, in file order; each input is an edge from the
// stage read to the reader, labelled with the route for a routed input.
// The stages of a chain that runs fused (see [Pipeline.Chains]) are
// grouped in a box labelled "fused", their edges drawn thick (Mermaid) or
// bold (Graphviz).
// Another format gives an error wrapping [ErrUnknownFormat].
func (p *Pipeline) Graph(format string) (string, error) {
	switch format {
	case "mermaid":
		return p.mermaid(), nil
	case "dot":
		return p.dot(), nil
	}
	return "", fmt.Errorf("%w %q (want mermaid or dot)", ErrUnknownFormat, format)
}

func (p *Pipeline) mermaid() string {
	// Nodes get ids s0, s1, ... because a stage name such as "end" would
	// be a Mermaid keyword.
	id := make(map[string]string, len(p.Stages))
	for i, s := range p.Stages {
		id[s.Name] = "s" + strconv.Itoa(i)
	}
	chains, fused := p.chainIndex()
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	node := func(indent string, s *Stage) {
		fmt.Fprintf(&b, "%s%s[\"%s<br/>%s: %s\"]\n", indent, id[s.Name], mermaidText(s.Name), s.Role, mermaidText(s.Type))
	}
	for i, c := range chains {
		fmt.Fprintf(&b, "    subgraph f%d [\"fused\"]\n", i)
		for _, s := range c {
			node("        ", s)
		}
		b.WriteString("    end\n")
	}
	for _, s := range p.Stages {
		if _, ok := fused[s.Name]; !ok {
			node("    ", s)
		}
	}
	for _, s := range p.Stages {
		for _, in := range s.From {
			switch {
			case in.Route == "" && fusedEdge(fused, in.Stage, s.Name):
				fmt.Fprintf(&b, "    %s ==> %s\n", id[in.Stage], id[s.Name])
			case in.Route == "":
				fmt.Fprintf(&b, "    %s --> %s\n", id[in.Stage], id[s.Name])
			default:
				fmt.Fprintf(&b, "    %s -->|%s| %s\n", id[in.Stage], mermaidText(in.Route), id[s.Name])
			}
		}
	}
	return b.String()
}

// mermaidText escapes what would end a Mermaid label.
var mermaidText = strings.NewReplacer(`"`, "#quot;", "|", "#124;").Replace

func (p *Pipeline) dot() string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(p.Name))
	b.WriteString("    rankdir=LR;\n    node [shape=box];\n")
	chains, fused := p.chainIndex()
	node := func(indent string, s *Stage) {
		fmt.Fprintf(&b, "%s%s [label=%s];\n", indent, dotQuote(s.Name), dotQuote(s.Name+`\n`+s.Role.String()+": "+s.Type))
	}
	for i, c := range chains {
		fmt.Fprintf(&b, "    subgraph cluster_fused%d {\n        label=\"fused\";\n        style=dashed;\n", i)
		for _, s := range c {
			node("        ", s)
		}
		b.WriteString("    }\n")
	}
	for _, s := range p.Stages {
		if _, ok := fused[s.Name]; !ok {
			node("    ", s)
		}
	}
	for _, s := range p.Stages {
		for _, in := range s.From {
			switch {
			case in.Route == "" && fusedEdge(fused, in.Stage, s.Name):
				fmt.Fprintf(&b, "    %s -> %s [style=bold];\n", dotQuote(in.Stage), dotQuote(s.Name))
			case in.Route == "":
				fmt.Fprintf(&b, "    %s -> %s;\n", dotQuote(in.Stage), dotQuote(s.Name))
			default:
				fmt.Fprintf(&b, "    %s -> %s [label=%s];\n", dotQuote(in.Stage), dotQuote(s.Name), dotQuote(in.Route))
			}
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote returns s as a DOT quoted string. DOT reads a backslash
// sequence such as \n in it as a line break of a label.
func dotQuote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

// chainIndex returns the fused chains of p and, for each stage in one,
// the index of its chain.
func (p *Pipeline) chainIndex() ([][]*Stage, map[string]int) {
	chains := p.Chains()
	fused := make(map[string]int)
	for i, c := range chains {
		for _, s := range c {
			fused[s.Name] = i
		}
	}
	return chains, fused
}

// fusedEdge reports whether stages u and n run in the same fused chain.
func fusedEdge(fused map[string]int, u, n string) bool {
	cu, ok := fused[u]
	cn, ok2 := fused[n]
	return ok && ok2 && cu == cn
}
