package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/stages"
)

// link checks the stage graph: unique names, default inputs, sources
// without inputs, inputs that name an existing stage other than itself and
// not a sink, no cycles, and at least one source. stagesKey is the stages
// key, for the problems of the whole list.
func (d *decoder) link(stagesKey *yaml.Node, drafts []*draft) {
	byName := make(map[string]int, len(drafts)) // the index of the first stage of each name
	var stageNames []string                     // in file order, for did-you-mean
	for i, s := range drafts {
		if s.nameNode == nil {
			continue
		}
		if first, taken := byName[s.Name]; taken {
			d.problem(s.nameNode, "%s: duplicate stage name (first at line %d)", s.where, drafts[first].nameNode.Line)
			continue
		}
		byName[s.Name] = i
		stageNames = append(stageNames, s.Name)
	}

	hasSource := false
	for i, s := range drafts {
		switch {
		case s.Role == stages.RoleSource:
			hasSource = true
			if s.fromKey != nil {
				d.problem(s.fromKey, "%s: a source does not read from other stages: remove from", s.where)
				s.inputs = nil
			}
		case s.fromKey != nil || s.Role == 0:
		case i == 0:
			d.problem(s.node, "%s: the first stage must be a source, or name its input with from", s.where)
		case drafts[i-1].nameNode != nil && byName[drafts[i-1].Name] == i-1:
			s.inputs = []input{{Input: Input{Stage: drafts[i-1].Name}}}
		}
	}
	if !hasSource {
		d.problem(stagesKey, "stages: a pipeline needs at least one source")
	}

	readers := make([][]int, len(drafts)) // the edges of the data flow
	for i, s := range drafts {
		for _, in := range s.inputs {
			j, ok := byName[in.Stage]
			switch {
			case !ok:
				d.problem(in.node, "%s: from %q: no stage is named %q%s", s.where, in.String(), in.Stage, didYouMean(in.Stage, stageNames))
			case j == i:
				d.problem(in.node, "%s: from %q: a stage cannot read from itself", s.where, in.String())
			case drafts[j].Role == stages.RoleSink && in.node == nil:
				d.problem(s.node, "%s: the stage before it, %q, is a sink, which has no output: name its input with from", s.where, in.Stage)
			case drafts[j].Role == stages.RoleSink:
				d.problem(in.node, "%s: from %q: %q is a sink, which has no output to read", s.where, in.String(), in.Stage)
			default:
				d.route(s, in, drafts[j])
				readers[j] = append(readers[j], i)
			}
		}
	}
	d.cycles(drafts, readers)
	for _, s := range drafts {
		d.partitioned(s, drafts, byName)
		if s.Spec != nil && s.Spec.Watermarks && s.InputPartitions == 0 && len(s.inputs) > 0 {
			d.problem(s.node, "%s: %s %q keeps state by key: it reads a partitioned stage (set key and partitions on %q)", s.where, s.Role, s.Type, s.inputs[0].Stage)
		}
	}
}

// partitioned checks the inputs of s against the partitions of the stages
// it reads: all partitioned the same, or none, since a worker of s owns
// partition k of every input at once.
func (d *decoder) partitioned(s *draft, drafts []*draft, byName map[string]int) {
	var first *draft
	for _, in := range s.inputs {
		j, ok := byName[in.Stage]
		if !ok {
			continue
		}
		u := drafts[j]
		if first == nil {
			first = u
			s.InputPartitions = u.Partitions
			continue
		}
		if u.Partitions == first.Partitions {
			continue
		}
		at := in.node
		if at == nil {
			at = s.node
		}
		switch {
		case first.Partitions == 0 || u.Partitions == 0:
			d.problem(at, "%s: from %q: reads partitioned and unpartitioned stages at once (%s)", s.where, in.String(), describePartitions(first, u))
		default:
			d.problem(at, "%s: from %q: the stages it reads have different partitions (%s): give them the same", s.where, in.String(), describePartitions(first, u))
		}
		s.InputPartitions = 0
		return
	}
}

func describePartitions(a, b *draft) string {
	return fmt.Sprintf("%q has %d, %q has %d", a.Name, a.Partitions, b.Name, b.Partitions)
}

// route checks that input in of stage s names an output that stage u
// has: its default output, unless its type declares routes without it, or
// one of the routes it declares.
func (d *decoder) route(s *draft, in input, u *draft) {
	if u.Spec == nil || !u.paramsOK {
		return
	}
	at := in.node
	if at == nil {
		at = s.node
	}
	if u.Spec.Routes == nil {
		if in.Route != "" {
			d.problem(at, "%s: from %q: %s %q has no routes: read from %q", s.where, in.String(), u.Role, u.Type, u.Name)
		}
		return
	}
	routes := u.Spec.Routes(u.Params)
	if slices.Contains(routes, in.Route) {
		return
	}
	var named []string
	for _, r := range routes {
		if r == "" {
			named = append(named, strconv.Quote(u.Name))
		} else {
			named = append(named, strconv.Quote(u.Name+"."+r))
		}
	}
	what := fmt.Sprintf("no route %q", in.Route)
	if in.Route == "" {
		what = "only routes"
	}
	d.problem(at, "%s: from %q: %s %q has %s: read from %s", s.where, in.String(), u.Role, u.Type, what, strings.Join(named, ", "))
}

// cycles reports the cycles of the graph whose edges are readers, one
// problem for each, at the input that closes it. Every stage on a cycle is
// on a reported one.
//
// The search for a cycle through a stage goes only over the stages of its
// strongly connected component, and only for a stage of a component with
// more than one stage: in a pipeline without cycles, the work is linear in
// the size of the graph.
func (d *decoder) cycles(drafts []*draft, readers [][]int) {
	comp := components(readers)
	size := make([]int, len(drafts))
	for _, c := range comp {
		size[c]++
	}
	onCycle := make([]bool, len(drafts))
	parent := make([]int, len(drafts))
	for i := range parent {
		parent[i] = -1
	}
	for start := range drafts {
		if onCycle[start] || size[comp[start]] < 2 {
			continue
		}
		path := cycleThrough(readers, comp, parent, start)
		if path == nil {
			continue
		}
		names := make([]string, 0, len(path)+1)
		for _, i := range path {
			onCycle[i] = true
			names = append(names, drafts[i].Name)
		}
		names = append(names, drafts[start].Name)
		last := drafts[path[len(path)-1]].Name
		for _, in := range drafts[start].inputs {
			if in.Stage == last {
				// At the from item, or at the stage for its default input.
				d.problem(cmp.Or(in.node, drafts[start].node), "cycle: %s", strings.Join(names, " -> "))
				break
			}
		}
	}
}

// cycleThrough returns a shortest path start, ..., v such that v -> start
// closes a cycle, or nil if start is on none. It searches breadth first
// over the stages of the component of start, comp giving the component of
// each; parent is all -1, and is left so.
func cycleThrough(readers [][]int, comp, parent []int, start int) []int {
	queue := []int{start}
	defer func() {
		for _, u := range queue {
			parent[u] = -1
		}
	}()
	for k := 0; k < len(queue); k++ {
		u := queue[k]
		for _, v := range readers[u] {
			if v == start {
				var path []int
				for w := u; w != start; w = parent[w] {
					path = append(path, w)
				}
				path = append(path, start)
				slices.Reverse(path)
				return path
			}
			if parent[v] < 0 && comp[v] == comp[start] {
				parent[v] = u
				queue = append(queue, v)
			}
		}
	}
	return nil
}

// components returns the strongly connected component of each node of the
// graph whose edges are readers, numbered from 0 (Tarjan's algorithm,
// without recursion so that a long chain of stages does not grow the
// stack).
func components(readers [][]int) []int {
	n := len(readers)
	comp := make([]int, n)
	index := make([]int, n) // 1 + the visit order, 0 if not visited
	low := make([]int, n)
	onStack := make([]bool, n)
	var stack []int
	type frame struct{ u, next int } // a node and its next edge to follow
	var calls []frame
	visited, comps := 0, 0
	for root := range n {
		if index[root] != 0 {
			continue
		}
		calls = append(calls, frame{u: root})
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			u := f.u
			if f.next == 0 && index[u] == 0 {
				visited++
				index[u], low[u] = visited, visited
				stack = append(stack, u)
				onStack[u] = true
			}
			if f.next < len(readers[u]) {
				v := readers[u][f.next]
				f.next++
				switch {
				case index[v] == 0:
					calls = append(calls, frame{u: v})
				case onStack[v]:
					low[u] = min(low[u], index[v])
				}
				continue
			}
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				p := calls[len(calls)-1].u
				low[p] = min(low[p], low[u])
			}
			if low[u] == index[u] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = comps
					if w == u {
						break
					}
				}
				comps++
			}
		}
	}
	return comp
}
