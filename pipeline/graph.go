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
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for i, s := range p.Stages {
		id[s.Name] = "s" + strconv.Itoa(i)
		fmt.Fprintf(&b, "    %s[\"%s<br/>%s: %s\"]\n", id[s.Name], mermaidText(s.Name), s.Role, mermaidText(s.Type))
	}
	for _, s := range p.Stages {
		for _, in := range s.From {
			if in.Route == "" {
				fmt.Fprintf(&b, "    %s --> %s\n", id[in.Stage], id[s.Name])
			} else {
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
	for _, s := range p.Stages {
		fmt.Fprintf(&b, "    %s [label=%s];\n", dotQuote(s.Name), dotQuote(s.Name+`\n`+s.Role.String()+": "+s.Type))
	}
	for _, s := range p.Stages {
		for _, in := range s.From {
			if in.Route == "" {
				fmt.Fprintf(&b, "    %s -> %s;\n", dotQuote(in.Stage), dotQuote(s.Name))
			} else {
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
