package pipeline

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/parser"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/yamlnode"
	"github.com/sluicehq/sluice/stages"
)

// Lint returns the warnings about a valid pipeline: what is allowed but
// is most likely not what was meant. Each names the stage (or the
// setting) and points at the key or value it is about, sorted by
// position, as for [Problems]; none is nil. The warnings are:
//
//   - a route of a stage (a switch's case or default, a window's late
//     side) that no stage reads: what is sent on it is not processed
//     further;
//   - a stage that keeps state by key (a window) whose key differs from
//     the key of the stage it reads, which decides the partitions: the
//     records of one window key may be spread over several partitions,
//     each emitting its own partial result;
//   - a file sink with replicas above 1 and a path without {worker}: its
//     replicas share one file, written one batch at a time;
//   - settings.dedup_window not longer than settings.ack_wait: the
//     outputs of a message redelivered after ack_wait may be published
//     again once the duplicate window has forgotten the first ones;
//   - an expression (key, event_time, an expression parameter) that uses
//     as a value a name that is also a builtin function of expr-lang, such
//     as count or len: it is read as the record's field.
//
// Positions are exact on a pipeline that [Parse] or [Load] returned; on
// one built otherwise they are those of the stages, or the file alone.
func (p *Pipeline) Lint() []Problem {
	l := &linter{p: p, stageNodes: p.stageNodes()}
	l.settings()
	for i, s := range p.Stages {
		l.routes(i, s)
		l.windowKey(i, s)
		l.fileSink(i, s)
		l.expressions(i, s)
	}
	Problems(l.warnings).sort()
	return l.warnings
}

// linter collects the warnings of one pipeline.
type linter struct {
	p          *Pipeline
	stageNodes []*yaml.Node // the mapping of each stage, or nil
	warnings   []Problem
}

// stageNodes returns the mapping of each stage in the file, or nil when
// the file is not known or does not match the stages.
func (p *Pipeline) stageNodes() []*yaml.Node {
	if p.root == nil {
		return nil
	}
	list := mappingValue(p.root, "stages")
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) != len(p.Stages) {
		return nil
	}
	out := make([]*yaml.Node, len(list.Content))
	for i, n := range list.Content {
		out[i] = yamlnode.Resolve(n)
	}
	return out
}

// warn adds a warning at n, or at the stage i (-1 for none) when n is nil.
func (l *linter) warn(i int, n *yaml.Node, format string, args ...any) {
	pos := Position{File: l.p.File}
	switch {
	case n != nil:
		pos.Line, pos.Col = n.Line, n.Column
	case i >= 0:
		pos = l.p.Stages[i].Pos
	}
	l.warnings = append(l.warnings, Problem{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// node returns the node at path under the mapping of stage i: the value
// of each key in turn, or the key itself for a path ending in "key:".
// It returns nil for what is not there.
func (l *linter) node(i int, path ...string) *yaml.Node {
	if i >= len(l.stageNodes) {
		return nil
	}
	return lookup(l.stageNodes[i], path...)
}

// lookup follows path, a list of mapping keys, from n; see linter.node.
func lookup(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		if name, ok := strings.CutSuffix(key, ":"); ok {
			for j := 0; j+1 < len(n.Content); j += 2 {
				if k := yamlnode.Resolve(n.Content[j]); k.Value == name {
					return k
				}
			}
			return nil
		}
		n = mappingValue(n, key)
	}
	return n
}

// settings warns of a duplicate window that does not outlast ack_wait.
func (l *linter) settings() {
	set := l.p.Settings
	if set.DedupWindow > set.AckWait {
		return
	}
	var at *yaml.Node
	if l.p.root != nil {
		settings := mappingValue(l.p.root, "settings")
		at = lookup(settings, "dedup_window")
		if at == nil {
			at = lookup(settings, "ack_wait")
		}
	}
	l.warn(-1, at, "settings: dedup_window (%s) is not longer than ack_wait (%s): the outputs of a message redelivered after ack_wait "+
		"are published again once the duplicate window has forgotten the first ones, and the stages after it process them twice; "+
		"make dedup_window longer than ack_wait", shortDuration(set.DedupWindow), shortDuration(set.AckWait))
}

// routes warns of the routes of stage s that no stage reads.
func (l *linter) routes(i int, s *Stage) {
	if s.Spec == nil || s.Spec.Routes == nil {
		return
	}
	for _, route := range s.Spec.Routes(s.Params) {
		if route == "" || l.read(Input{Stage: s.Name, Route: route}) {
			continue
		}
		// At the value that names the route, if one does.
		at := findScalar(l.node(i, "with"), route)
		if at == nil {
			at = l.node(i, "with:")
		}
		l.warn(i, at, "stage %q: no stage reads route %q (from: %s.%s): the records %s %q sends on it are not processed further",
			s.Name, route, s.Name, route, s.Role, s.Type)
	}
}

// read reports whether a stage reads in.
func (l *linter) read(in Input) bool {
	for _, s := range l.p.Stages {
		if slices.Contains(s.From, in) {
			return true
		}
	}
	return false
}

// findScalar returns the first scalar value under n whose text is value.
func findScalar(n *yaml.Node, value string) *yaml.Node {
	if n == nil {
		return nil
	}
	n = yamlnode.Resolve(n)
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == value {
			return n
		}
	case yaml.MappingNode:
		for j := 1; j < len(n.Content); j += 2 {
			if found := findScalar(n.Content[j], value); found != nil {
				return found
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if found := findScalar(c, value); found != nil {
				return found
			}
		}
	}
	return nil
}

// windowKey warns of a stage that keeps state by its key parameter (a
// window) and reads a stage partitioned by another key.
func (l *linter) windowKey(i int, s *Stage) {
	if s.Spec == nil || !s.Spec.Watermarks {
		return
	}
	if decl, ok := s.Spec.Param("key"); !ok || decl.Type != stages.TypeExpr {
		return
	}
	key := s.Params.String("key")
	for _, in := range s.From {
		u := l.p.Stage(in.Stage)
		if u == nil || u.Key == "" || sameExpr(key, u.Key) {
			continue
		}
		l.warn(i, l.node(i, "with", "key"), "stage %q: its key %q is not %q, the key of stage %q that decides the partitions it reads: "+
			"unless the records of one value of %s all have one value of %s, they are spread over several partitions, each emitting "+
			"its own partial windows; key both by the same expression", s.Name, key, u.Key, u.Name, key, u.Key)
	}
}

// sameExpr reports whether two expressions are the same but for spacing.
func sameExpr(a, b string) bool {
	if strings.TrimSpace(a) == strings.TrimSpace(b) {
		return true
	}
	ta, errA := parser.Parse(a)
	tb, errB := parser.Parse(b)
	return errA == nil && errB == nil && ta.Node.String() == tb.Node.String()
}

// Of the file sink, what shares one file.
const (
	fileSinkType      = "file"
	fileSinkPath      = "path"
	workerPlaceholder = "{worker}"
)

// fileSink warns of a file sink whose replicas share one file.
func (l *linter) fileSink(i int, s *Stage) {
	if s.Role != stages.RoleSink || s.Type != fileSinkType || s.Replicas <= 1 {
		return
	}
	if strings.Contains(s.Params.String(fileSinkPath), workerPlaceholder) {
		return
	}
	l.warn(i, l.node(i, "replicas"), "stage %q: the %d replicas of a file sink write one file, one batch at a time, and so would the workers "+
		"of a cluster, taking turns at its lock: put %s in path for a file per worker process, or drop replicas",
		s.Name, s.Replicas, workerPlaceholder)
}

// expressions warns of the names of builtin functions used as values in
// the expressions of stage s.
func (l *linter) expressions(i int, s *Stage) {
	check := func(where, src string, at *yaml.Node) {
		for _, name := range shadowedBuiltins(src) {
			l.warn(i, at, "stage %q: %s: field `%s` shadows the builtin %s(); it is read as the field (write $env.%s to make that plain)",
				s.Name, where, name, name, name)
		}
	}
	if s.Key != "" {
		check("key", s.Key, l.node(i, "key"))
	}
	if s.EventTime != "" {
		check("event_time", s.EventTime, l.node(i, "event_time"))
	}
	if s.Spec == nil {
		return
	}
	for _, decl := range s.Spec.Params {
		if decl.Type != stages.TypeExpr {
			continue
		}
		at := l.node(i, "with", decl.Name)
		if at == nil && l.stageNodes != nil {
			continue // not given: a default of the type's own
		}
		if src := s.Params.String(decl.Name); src != "" {
			check("with."+decl.Name, src, at)
		}
	}
}

// shadowedBuiltins returns, sorted, the names of expr-lang builtin
// functions that src uses as values, not calls: names of fields.
func shadowedBuiltins(src string) []string {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	v := &builtinValues{}
	ast.Walk(&tree.Node, v)
	slices.Sort(v.names)
	return slices.Compact(v.names)
}

// builtinValues finds identifiers named like builtins. A call of a
// builtin parses as a BuiltinNode, so an identifier of that name is a
// value: a field of the record (let may not take a builtin's name).
type builtinValues struct {
	names []string
}

func (v *builtinValues) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		if _, isBuiltin := builtin.Index[id.Value]; isBuiltin {
			v.names = append(v.names, id.Value)
		}
	}
}

// shortDuration writes d as the pipeline file would: 1m, not 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
