package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/internal/yamlnode"
	"github.com/sluicehq/sluice/stages"
)

// Keys of a stage mapping.
var stageKeys = []string{"name", "description", "source", "transform", "sink", "from", "replicas", "on_error", "max_deliver", "backoff", "max_outage", "event_time", "key", "partitions", "buffer", "with"}

// MaxPartitions bounds the partitions key of a stage.
const MaxPartitions = 1024

// draft is a stage being decoded, with the nodes that later checks point at.
type draft struct {
	*Stage
	node     *yaml.Node // the stage's mapping
	nameNode *yaml.Node // nil when the name is missing or invalid
	where    string     // names the stage in messages: stage "clean", or stage 3
	fromKey  *yaml.Node // nil when from is not given
	inputs   []input
	paramsOK bool // the parameters were decoded without a problem
}

// input is one input of a stage and the from item that names it.
type input struct {
	Input
	node *yaml.Node // nil for the default input, the stage listed before
}

// stages decodes and checks the list of stages.
func (d *decoder) stages(f field) []*Stage {
	n := f.value
	if n.Kind != yaml.SequenceNode {
		d.problem(n, "stages: want a list of stages, got %s", yamlnode.Describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		d.problem(f.key, "stages: want at least one stage")
		return nil
	}
	drafts := make([]*draft, len(n.Content))
	for i, item := range n.Content {
		drafts[i] = d.stage(yamlnode.Resolve(item), i+1)
	}
	d.link(f.key, drafts)
	out := make([]*Stage, len(drafts))
	for i, s := range drafts {
		for _, in := range s.inputs {
			s.From = append(s.From, in.Input)
		}
		out[i] = s.Stage
	}
	return out
}

// stage decodes the index-th (1-based) stage mapping n.
func (d *decoder) stage(n *yaml.Node, index int) *draft {
	s := &draft{
		Stage: &Stage{Replicas: 1, Pos: d.pos(n)},
		node:  n,
		where: fmt.Sprintf("stage %d", index),
	}
	if n.Kind != yaml.MappingNode {
		d.problem(n, "%s: want a mapping with name and source, transform or sink, got %s", s.where, yamlnode.Describe(n))
		return s
	}
	// The name first, so that every other message can name the stage.
	if name := mappingValue(n, "name"); name != nil {
		d.stageName(s, name)
	} else {
		d.problem(n, "%s: missing required key \"name\"", s.where)
	}
	fields := d.mapping(n, s.where, stageKeys)
	if f, ok := fields["description"]; ok {
		s.Description, _ = d.str(f.value, s.where+": description")
	}
	d.role(s, fields)
	if s.Spec != nil && s.Spec.RunsCommands && d.policy != nil && !d.policy.AllowExec {
		d.problem(fields[s.Role.String()].value, "%s: %s %q runs programs on the worker, which does not allow it (allow_exec, --allow-exec)", s.where, s.Role, s.Type)
	}
	if f, ok := fields["from"]; ok {
		s.fromKey = f.key
		s.inputs = d.from(f.value, s.where+": from")
	}
	if f, ok := fields["replicas"]; ok {
		if v, ok := d.intMin(f.value, s.where+": replicas", 1); ok && v > 1 && s.Role == stages.RoleSource {
			d.problem(f.value, "%s: replicas must be 1 for a source (got %d): sources run as one instance", s.where, v)
		} else if ok {
			s.Replicas = v
		}
	}
	if f, ok := fields["buffer"]; ok {
		if v, ok := d.enum(f.value, s.where+": buffer", BufferAuto, BufferDurable); ok {
			s.Durable = v == BufferDurable
		}
	}
	d.errorHandling(s, fields)
	d.keyed(s, fields)
	if s.Spec != nil {
		d.params(s, fields["with"])
		if f, ok := fields["partitions"]; ok && s.Partitions > 0 && s.paramsOK && s.Spec.Routes != nil &&
			slices.ContainsFunc(s.Spec.Routes(s.Params), func(r string) bool { return r != "" }) {
			d.problem(f.key, "%s: partitions: %s %q sends outputs on routes, which are not partitioned", s.where, s.Role, s.Type)
			s.Partitions = 0
		}
	} else if f, ok := fields["with"]; ok && !yamlnode.IsNull(f.value) {
		d.mapping(f.value, s.where+": with", nil) // the type is unknown: check the shape only
	}
	return s
}

// errorHandling decodes on_error, max_deliver, backoff and max_outage.
func (d *decoder) errorHandling(s *draft, fields map[string]field) {
	if f, ok := fields["on_error"]; ok {
		if v, ok := d.enum(f.value, s.where+": on_error", OnErrorRetry, OnErrorDeadLetter, OnErrorDrop); ok {
			if v == OnErrorRetry && s.Role == stages.RoleSource {
				d.problem(f.value, "%s: on_error: a source cannot retry a record it could not read: want %s or %s", s.where, OnErrorDeadLetter, OnErrorDrop)
			}
			s.OnError = v
		}
	}
	if f, ok := fields["max_deliver"]; ok {
		if v, ok := d.intMin(f.value, s.where+": max_deliver", 1); ok {
			s.MaxDeliver = v
		}
	}
	if f, ok := fields["backoff"]; ok {
		if v, ok := d.backoff(f.value, s.where+": backoff"); ok {
			s.Backoff = v
		}
	}
	if f, ok := fields["max_outage"]; ok {
		if v, ok := d.durationMin(f.value, s.where+": max_outage", 0); ok {
			if s.Role == stages.RoleSource {
				d.problem(f.key, "%s: max_outage is for a transform or sink, which a destination that is down holds, not a source", s.where)
			}
			s.MaxOutage, s.maxOutageSet = v, true
		}
	}
	for _, key := range []string{"max_deliver", "backoff"} {
		if f, ok := fields[key]; ok && (s.Role == stages.RoleSource || s.OnError == OnErrorDeadLetter || s.OnError == OnErrorDrop) && s.Role != 0 {
			d.problem(f.key, "%s: %s is for a stage that retries (on_error: retry), not a %s", s.where, key, describeErrorHandling(s))
		}
	}
}

// keyed decodes event_time, key and partitions: what the runner sets on
// each output of the stage.
func (d *decoder) keyed(s *draft, fields map[string]field) {
	for _, name := range []string{"event_time", "key"} {
		f, ok := fields[name]
		if !ok {
			continue
		}
		if s.Role == stages.RoleSink {
			d.problem(f.key, "%s: %s is set on the outputs of a stage, and a sink has none", s.where, name)
			continue
		}
		src, ok := d.str(f.value, s.where+": "+name)
		if !ok {
			continue
		}
		if _, err := stages.CompileExpr(src); err != nil {
			d.problem(f.value, "%s: %s: expression does not compile: %v", s.where, name, err)
			continue
		}
		if name == "key" {
			s.Key = src
		} else {
			s.EventTime = src
		}
	}
	f, ok := fields["partitions"]
	if !ok {
		return
	}
	n, ok := d.intMin(f.value, s.where+": partitions", 1)
	switch {
	case !ok:
	case s.Role == stages.RoleSink:
		d.problem(f.key, "%s: partitions split the output of a stage, and a sink has none", s.where)
	case n > MaxPartitions:
		d.problem(f.value, "%s: partitions: at most %d, got %d", s.where, MaxPartitions, n)
	case mappingValue(s.node, "key") == nil:
		d.problem(f.key, "%s: partitions needs key: the expression whose value picks each output's partition", s.where)
	default:
		s.Partitions = n
	}
}

func describeErrorHandling(s *draft) string {
	if s.Role == stages.RoleSource {
		return "source"
	}
	return "stage with on_error: " + s.OnError
}

// stageName sets the name of s from n if it is a valid one.
func (d *decoder) stageName(s *draft, n *yaml.Node) {
	name, ok := d.name(n, s.where)
	if !ok {
		return
	}
	if name == schema.DLQStage {
		d.problem(n, "%s: name %q is reserved for the dead-letter stream", s.where, name)
		return
	}
	s.Name, s.nameNode, s.where = name, n, fmt.Sprintf("stage %q", name)
}

// role finds the one role key of a stage and looks its type up.
func (d *decoder) role(s *draft, fields map[string]field) {
	var given []field
	for _, role := range stages.Roles {
		if f, ok := fields[role.String()]; ok {
			given = append(given, f)
		}
	}
	slices.SortFunc(given, func(a, b field) int { return comparePos(a.key, b.key) })
	switch len(given) {
	case 0:
		d.problem(s.node, "%s: want one of the keys source, transform or sink", s.where)
		return
	case 1:
	default:
		for _, f := range given[1:] {
			d.problem(f.key, "%s: both %s and %s given: a stage has exactly one role", s.where, given[0].key.Value, f.key.Value)
		}
		return
	}
	f := given[0]
	role := roleOf(f.key.Value)
	s.Role = role
	typ, ok := d.str(f.value, s.where+": "+role.String())
	if !ok {
		return
	}
	spec, err := d.reg.LookupRole(role, typ)
	if err == nil {
		s.Type, s.Spec = typ, spec
		return
	}
	if others, err := d.reg.Lookup(typ); err == nil {
		roles := make([]string, len(others))
		for i, o := range others {
			roles[i] = o.Role().String()
		}
		d.problem(f.value, "%s: %q is a %s type, not a %s", s.where, typ, strings.Join(roles, " and "), role)
		return
	}
	known := d.reg.Names(role)
	if len(known) == 0 {
		d.problem(f.value, "%s: unknown %s type %q (no %s types are registered)", s.where, role, typ, role)
		return
	}
	d.problem(f.value, "%s: unknown %s type %q%s (want %s)", s.where, role, typ, didYouMean(typ, known), strings.Join(known, ", "))
}

func roleOf(key string) stages.Role {
	for _, role := range stages.Roles {
		if role.String() == key {
			return role
		}
	}
	return 0
}

// from decodes the inputs of a stage: a name or a list of names, each
// "stage" or "stage.route". Whether the stages exist is checked by link.
func (d *decoder) from(n *yaml.Node, where string) []input {
	items := []*yaml.Node{n}
	switch {
	case n.Kind == yaml.SequenceNode && len(n.Content) == 0:
		d.problem(n, "%s: want at least one stage", where)
		return nil
	case n.Kind == yaml.SequenceNode:
		items = n.Content
	case n.Kind != yaml.ScalarNode || yamlnode.IsNull(n):
		d.problem(n, "%s: want a stage name or a list of them, got %s", where, yamlnode.Describe(n))
		return nil
	}
	var out []input
	given := make(map[Input]bool, len(items))
	for _, item := range items {
		item = yamlnode.Resolve(item)
		text, ok := d.str(item, where)
		if !ok {
			continue
		}
		stage, route, routed := strings.Cut(text, ".")
		in := input{Input: Input{Stage: stage, Route: route}, node: item}
		switch {
		case routed && !stages.ValidRoute(route):
			d.problem(item, "%s: %q: want stage or stage.route, with a route of letters, digits, '_' and '-' that does not begin with '_'", where, text)
		case given[in.Input]:
			d.problem(item, "%s: %q given twice", where, text)
		default:
			given[in.Input] = true
			out = append(out, in)
		}
	}
	return out
}

// params decodes the with mapping of a stage whose type is known and
// checks the parameters against the type's spec.
func (d *decoder) params(s *draft, with field) {
	missingAt := s.node // where a parameter that is not given is reported
	raw := make(map[string]any)
	var given map[string]field
	skip := make(map[string]bool) // parameters already reported
	if with.key != nil {
		missingAt = with.key
		if !yamlnode.IsNull(with.value) {
			given = d.mapping(with.value, s.where+": with", nil)
		}
	}
	for name, f := range given {
		var v any
		if err := decodeNode(f.value, &v); err != nil {
			d.problem(f.value, "%s: %s %q: parameter %q: %s", s.where, s.Role, s.Type, name, strings.TrimPrefix(err.Error(), "yaml: "))
			skip[name] = true
		}
		raw[name] = yamlnode.Plain(v)
		if d.failed(f.value) {
			skip[name] = true
		}
	}
	params, errs := s.Spec.ParseParams(raw)
	s.Params = params
	s.paramsOK = len(errs) == 0 && len(skip) == 0
	prefix := fmt.Sprintf("%s: %s %q", s.where, s.Role, s.Type)
	if s.paramsOK && d.policy != nil {
		d.confinePaths(s, prefix, given, missingAt)
	}
	for _, err := range errs {
		var pe *stages.ParamError
		if !errors.As(err, &pe) {
			d.problem(missingAt, "%s: %s", prefix, paramText(err, ""))
			continue
		}
		if skip[pe.Param] {
			continue
		}
		f, ok := given[pe.Param]
		decl, declared := s.Spec.Param(pe.Param)
		switch {
		case !declared:
			d.problem(f.key, "%s: unknown parameter %q%s (%s)", prefix, pe.Param, didYouMean(pe.Param, paramList(s.Spec)), paramNames(s.Spec))
		case !ok && decl.Required:
			d.problem(missingAt, "%s: missing required parameter %q", prefix, pe.Param)
		case !ok:
			d.problem(missingAt, "%s: parameter %q: %s", prefix, pe.Param, paramText(pe.Err, pe.Param))
		default:
			d.problem(f.value, "%s: parameter %q: %s", prefix, pe.Param, paramText(pe.Err, pe.Param))
		}
	}
}

// confinePaths resolves the parameters of s that are file-system paths
// under the policy's data directory, reporting those it refuses.
func (d *decoder) confinePaths(s *draft, prefix string, given map[string]field, missingAt *yaml.Node) {
	for _, name := range s.Spec.PathParams(s.Params) {
		at := missingAt
		if f, ok := given[name]; ok {
			at = f.value
		}
		switch v := s.Params.Get(name).(type) {
		case string:
			if v == "" {
				continue // an optional path left empty
			}
			abs, err := d.policy.confine(v)
			if err != nil {
				d.problem(at, "%s: parameter %q: %v", prefix, name, err)
				s.paramsOK = false
				continue
			}
			s.Params = s.Params.With(name, abs)
		case []string:
			out := make([]string, len(v))
			ok := true
			for i, p := range v {
				abs, err := d.policy.confine(p)
				if err != nil {
					d.problem(at, "%s: parameter %q: item %d: %v", prefix, name, i+1, err)
					ok = false
					continue
				}
				out[i] = abs
			}
			if !ok {
				s.paramsOK = false
				continue
			}
			s.Params = s.Params.With(name, out)
		}
	}
}

// paramText returns the message of a parameter error without the
// "sluice: invalid parameter: " and "NAME: " prefixes that the stages
// package puts before it.
func paramText(err error, param string) string {
	s := strings.TrimPrefix(err.Error(), stages.ErrInvalidParam.Error()+": ")
	if param != "" {
		s = strings.TrimPrefix(s, param+": ")
	}
	return s
}

// paramNames lists the parameters of a type for an unknown-parameter message.
func paramNames(spec *stages.Spec) string {
	if len(spec.Params) == 0 {
		return "it takes none"
	}
	return "want " + strings.Join(paramList(spec), ", ")
}

// paramList returns the names of the parameters of a type.
func paramList(spec *stages.Spec) []string {
	names := make([]string, len(spec.Params))
	for i, p := range spec.Params {
		names[i] = p.Name
	}
	return names
}

// failed reports whether n or a node under it was already reported by
// interpolate.
func (d *decoder) failed(n *yaml.Node) bool {
	if d.bad[n] {
		return true
	}
	return slices.ContainsFunc(n.Content, d.failed)
}

// comparePos orders nodes by line and column.
func comparePos(a, b *yaml.Node) int {
	return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
}

// defaults fills in what the stage takes from the pipeline's settings.
func (s *Stage) defaults(set Settings) {
	if s.OnError == "" {
		s.OnError = OnErrorRetry
		if s.Role == stages.RoleSource {
			s.OnError = OnErrorDeadLetter
		}
	}
	if s.MaxDeliver == 0 {
		s.MaxDeliver = set.MaxDeliver
	}
	if s.Backoff == nil {
		s.Backoff = slices.Clone(set.Backoff)
	}
	if !s.maxOutageSet {
		s.MaxOutage = set.MaxOutage
	}
}
