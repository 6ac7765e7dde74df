package pipeline

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// interpolate expands variables in every scalar value under n, in place;
// keys are left alone. A plain (unquoted, untagged) scalar that changed is
// re-resolved the way YAML resolves it, so `replicas: ${N:-4}` is the int 4.
// A scalar that cannot be expanded is reported and marked bad, so that later
// checks do not report it again.
func (d *decoder) interpolate(n *yaml.Node) {
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			d.interpolate(c)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			d.interpolate(n.Content[i])
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		value, errs := expand(n.Value, d.lookupEnv)
		for _, msg := range errs {
			d.problem(n, "%s", msg)
		}
		if len(errs) > 0 {
			d.bad[n] = true
			return
		}
		n.Value = value
		if n.Style == 0 {
			n.Tag = "" // ShortTag resolves an untagged plain scalar from its value
			n.Tag = n.ShortTag()
		}
	}
	// Aliases are expanded where their anchor is.
}

// expand replaces ${NAME} by the value of the variable NAME and
// ${NAME:-default} by that value, or by default when NAME is unset or
// empty; $${ is a literal ${. It returns a message for each reference it
// cannot expand.
func expand(s string, lookup func(string) (string, bool)) (string, []string) {
	var b strings.Builder
	var errs []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), errs
		}
		if i > 0 && s[i-1] == '$' { // $${
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			errs = append(errs, fmt.Sprintf("unterminated %q: want ${NAME} or ${NAME:-default}", s[i:]))
			return b.String(), errs
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !varName.MatchString(name) {
			errs = append(errs, fmt.Sprintf("bad variable reference %q: want ${NAME} or ${NAME:-default}", "${"+ref+"}"))
			continue
		}
		value, ok := lookup(name)
		switch {
		case hasDef && value == "":
			value = def
		case !ok:
			errs = append(errs, fmt.Sprintf("undefined variable %q (set it or give a default: ${%s:-value})", name, name))
		}
		b.WriteString(value)
	}
}
