package pipeline

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/yamlnode"
)

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// interpolate expands variables in every scalar value under n, in place;
// keys are left alone. A plain (unquoted, untagged) scalar that changed is
// re-resolved the way YAML resolves it, so `replicas: ${N:-4}` is the int 4.
// A scalar that cannot be expanded is reported and marked bad, so that later
// checks do not report it again. where names n for the messages about a
// variable the policy refuses: "" at the top, `stage "clean": with.expr`
// further down.
func (d *decoder) interpolate(n *yaml.Node, where string) {
	switch n.Kind {
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.interpolate(c, d.itemWhere(where, c, i))
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			d.interpolate(n.Content[i], keyWhere(where, n.Content[i-1]))
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		var allow func(string) bool
		if d.policy != nil {
			allow = d.policy.allowsVar
		}
		value, errs, denied := expand(n.Value, d.lookupEnv, allow)
		for _, msg := range errs {
			d.problem(n, "%s", msg)
		}
		for _, name := range denied {
			d.problem(n, "%s", yamlnode.At(where, d.policy.deniedVar(name)))
		}
		if len(errs) > 0 || len(denied) > 0 {
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

// keyWhere names the value of key k under where.
func keyWhere(where string, k *yaml.Node) string {
	switch {
	case where == "":
		return k.Value
	case strings.HasPrefix(where, "stage ") && !strings.Contains(where, ":"):
		return where + ": " + k.Value
	}
	return where + "." + k.Value
}

// itemWhere names item i of the list where names: a stage by its name
// (or number) in the stages list, else where[i].
func (d *decoder) itemWhere(where string, item *yaml.Node, i int) string {
	if where != "stages" {
		return fmt.Sprintf("%s[%d]", where, i)
	}
	if item.Kind == yaml.MappingNode {
		if name := mappingValue(item, "name"); name != nil && name.Kind == yaml.ScalarNode && !strings.Contains(name.Value, "${") {
			return fmt.Sprintf("stage %q", name.Value)
		}
	}
	return fmt.Sprintf("stage %d", i+1)
}

// expand replaces ${NAME} by the value of the variable NAME and
// ${NAME:-default} by that value, or by default when NAME is unset or
// empty; $${ is a literal ${. It returns a message for each reference it
// cannot expand, and the names of the variables that allow, if not nil,
// refuses: those are not looked up, default or not.
func expand(s string, lookup func(string) (string, bool), allow func(string) bool) (string, []string, []string) {
	var b strings.Builder
	var errs, denied []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), errs, denied
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
			return b.String(), errs, denied
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !varName.MatchString(name) {
			errs = append(errs, fmt.Sprintf("bad variable reference %q: want ${NAME} or ${NAME:-default}", "${"+ref+"}"))
			continue
		}
		if allow != nil && !allow(name) {
			denied = append(denied, name)
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
