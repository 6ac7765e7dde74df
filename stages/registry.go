package stages

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"
)

// Spec declares a stage type: its name, its parameters and how to build it.
// Exactly one of NewSource, NewTransform and NewSink is set; it decides the
// type's role.
type Spec struct {
	// Name is the type name used in YAML, such as "map"; [a-z][a-z0-9_]*.
	Name string
	// Summary is one line for `sluice stages`; Doc may add paragraphs.
	Summary string
	Doc     string
	Params  []Param
	// Check, if set, validates parameters together after each was converted
	// (for example "path" and "glob" are exclusive). Return a *[ParamError]
	// to point at one parameter.
	Check func(Params) error
	// Routes, if set, returns the routes a transform of this type sends
	// its outputs on (see [Message.Route]), "" standing for its default
	// output. Validation then lets a stage read "from: stage.route" only
	// for a route listed, and "from: stage" only if "" is. Without
	// Routes a stage has only its default output.
	Routes func(Params) []string
	// Watermarks tells that the type's transforms implement [Windowed]:
	// a stage of the type must read a partitioned stage, and the stages
	// before it carry watermarks.
	Watermarks bool
	// Stateless tells that the type's transforms keep nothing from one
	// record to the next and act on nothing but the outputs they return.
	// The runner may then run a stage of the type fused
	// with the stage before it, in the same step, with no stream between
	// them (see the pipeline setting fusion).
	Stateless bool
	// RunsCommands tells that stages of the type run programs of the host
	// they run on (the exec transform): a pipeline deployed to a worker
	// may use the type only where the worker allows it.
	RunsCommands bool
	// Paths, if set, returns the names of the parameters that hold
	// file-system paths for these parameters, for a type where that
	// depends on other parameters (a SQLite dsn is a path, a PostgreSQL
	// one is not). Without it, the parameters declared with [Param.Path]
	// are the paths.
	Paths func(Params) []string

	NewSource    func(Params, Info) (Source, error)
	NewTransform func(Params, Info) (Transform, error)
	NewSink      func(Params, Info) (Sink, error)

	// Plugin is the file of the Go plugin that registered the type; the
	// loader sets it. Empty for a type compiled in.
	Plugin string
}

// PathParams returns the names of the parameters of p that hold
// file-system paths: those [Spec.Paths] returns if it is set, else those
// declared with [Param.Path].
func (s *Spec) PathParams(p Params) []string {
	if s.Paths != nil {
		return s.Paths(p)
	}
	var out []string
	for _, d := range s.Params {
		if d.Path {
			out = append(out, d.Name)
		}
	}
	return out
}

// Role returns the role decided by which constructor is set, or 0.
func (s *Spec) Role() Role {
	switch {
	case s.NewSource != nil && s.NewTransform == nil && s.NewSink == nil:
		return RoleSource
	case s.NewSource == nil && s.NewTransform != nil && s.NewSink == nil:
		return RoleTransform
	case s.NewSource == nil && s.NewTransform == nil && s.NewSink != nil:
		return RoleSink
	}
	return 0
}

// Param returns the declaration of the named parameter.
func (s *Spec) Param(name string) (*Param, bool) {
	for i := range s.Params {
		if s.Params[i].Name == name {
			return &s.Params[i], true
		}
	}
	return nil, false
}

// ParseParams converts raw values decoded from YAML, applies defaults and
// runs Check. It returns every problem it finds; each error wraps
// [ErrInvalidParam] and is a *[ParamError] naming the parameter.
func (s *Spec) ParseParams(raw map[string]any) (Params, []error) {
	var errs []error
	values := make(map[string]any, len(s.Params))
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, ok := s.Param(name)
		if !ok {
			errs = append(errs, &ParamError{Param: name, Err: fmt.Errorf("%w: unknown parameter %q for %s %q", ErrInvalidParam, name, s.Role(), s.Name)})
			continue
		}
		v, err := p.Convert(raw[name])
		if err != nil {
			errs = append(errs, &ParamError{Param: name, Err: err})
			continue
		}
		values[name] = v
	}
	for i := range s.Params {
		p := &s.Params[i]
		if _, given := raw[p.Name]; given {
			continue
		}
		if p.Required {
			errs = append(errs, &ParamError{Param: p.Name, Err: fmt.Errorf("%w: missing required parameter %q for %s %q", ErrInvalidParam, p.Name, s.Role(), s.Name)})
		} else if p.Default != nil {
			values[p.Name] = p.Default
		}
	}
	params := NewParams(values)
	if len(errs) == 0 && s.Check != nil {
		if err := s.Check(params); err != nil {
			errs = append(errs, err)
		}
	}
	return params, errs
}

var typeName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// routeName is what a route may be called: one NATS subject token of
// letters, digits, '_' and '-'. Routes beginning with '_' are reserved
// (_replay).
var routeName = regexp.MustCompile(`^[A-Za-z0-9-][A-Za-z0-9_-]*$`)

// ValidRoute reports whether name may name a route (see [Spec.Routes]).
func ValidRoute(name string) bool { return routeName.MatchString(name) }

// Registry maps stage type names to specs. A name is unique within a role:
// the source "file" and the sink "file" are two types. It is safe for
// concurrent use.
type Registry struct {
	mu    sync.RWMutex
	specs map[specKey]*Spec
}

type specKey struct {
	role Role
	name string
}

// NewRegistry returns a registry with no types. The built-in types are in
// package stages/builtin (builtin.NewRegistry returns a registry holding
// them) and in its family packages, each with a Register function.
func NewRegistry() *Registry {
	return &Registry{specs: make(map[specKey]*Spec)}
}

// Default is the registry that [Register] adds to and that the CLI uses. It
// starts empty: a program registers the types it wants, such as
// builtin.Register(stages.Default) for every built-in type; Go plugins add
// theirs with [MustRegister].
var Default = NewRegistry()

// Register adds spec to the [Default] registry. While a Go plugin is being
// loaded (see [Registry.LoadPlugin]), it hands the spec to the loader
// instead, which registers it where the plugin is loaded to.
func Register(spec Spec) error {
	if captured(spec) {
		return nil
	}
	return Default.Register(spec)
}

// MustRegister adds spec to the [Default] registry and panics on error; for
// init functions. In a Go plugin it does what [Register] does.
func MustRegister(spec Spec) {
	if err := Register(spec); err != nil {
		panic(err)
	}
}

// Register adds a type. It fails with [ErrDuplicateType] if the name is
// taken for the spec's role and [ErrInvalidSpec] if the spec is malformed.
func (r *Registry) Register(spec Spec) error {
	if !typeName.MatchString(spec.Name) {
		return fmt.Errorf("%w: type name %q must match %s", ErrInvalidSpec, spec.Name, typeName)
	}
	if spec.Role() == 0 {
		return fmt.Errorf("%w: %q must set exactly one of NewSource, NewTransform, NewSink", ErrInvalidSpec, spec.Name)
	}
	seen := make(map[string]bool, len(spec.Params))
	for _, p := range spec.Params {
		if p.Name == "" || seen[p.Name] {
			return fmt.Errorf("%w: %q has an empty or repeated parameter name %q", ErrInvalidSpec, spec.Name, p.Name)
		}
		seen[p.Name] = true
		if p.Default != nil && !defaultHasType(p) {
			return fmt.Errorf("%w: %q parameter %q: default %v is not a valid %s", ErrInvalidSpec, spec.Name, p.Name, p.Default, p.Type)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	key := specKey{spec.Role(), spec.Name}
	if _, ok := r.specs[key]; ok {
		return fmt.Errorf("%w: %s %q", ErrDuplicateType, key.role, spec.Name)
	}
	s := spec
	s.Params = slices.Clone(spec.Params)
	r.specs[key] = &s
	return nil
}

// defaultHasType reports whether p.Default has the Go type that
// [Param.Convert] returns for p.Type, and is an allowed value.
func defaultHasType(p Param) bool {
	switch p.Type {
	case TypeString, TypeExpr:
		s, ok := p.Default.(string)
		return ok && (len(p.Enum) == 0 || slices.Contains(p.Enum, s))
	case TypeInt:
		_, ok := p.Default.(int)
		return ok
	case TypeFloat:
		_, ok := p.Default.(float64)
		return ok
	case TypeBool:
		_, ok := p.Default.(bool)
		return ok
	case TypeDuration:
		_, ok := p.Default.(time.Duration)
		return ok
	case TypeStringList:
		_, ok := p.Default.([]string)
		return ok
	case TypeStringMap:
		_, ok := p.Default.(map[string]string)
		return ok
	case TypeMapList:
		_, ok := p.Default.([]map[string]string)
		return ok
	}
	return false
}

// LookupRole returns the spec of the type of that role and name, or an
// error wrapping [ErrUnknownType].
func (r *Registry) LookupRole(role Role, name string) (*Spec, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.specs[specKey{role, name}]
	if !ok {
		return nil, fmt.Errorf("%w: %s %q", ErrUnknownType, role, name)
	}
	return s, nil
}

// Lookup returns every spec named name, one per role that has it, in role
// order; none gives an error wrapping [ErrUnknownType].
func (r *Registry) Lookup(name string) ([]*Spec, error) {
	var out []*Spec
	for _, role := range Roles {
		if s, err := r.LookupRole(role, name); err == nil {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, name)
	}
	return out, nil
}

// Specs returns every spec, sorted by role then name.
func (r *Registry) Specs() []*Spec {
	r.mu.RLock()
	out := make([]*Spec, 0, len(r.specs))
	for _, s := range r.specs {
		out = append(out, s)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Role() != out[j].Role() {
			return out[i].Role() < out[j].Role()
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Names returns the type names of one role, sorted.
func (r *Registry) Names(role Role) []string {
	var out []string
	for _, s := range r.Specs() {
		if s.Role() == role {
			out = append(out, s.Name)
		}
	}
	return out
}

// Clone returns an independent copy of r.
func (r *Registry) Clone() *Registry {
	c := NewRegistry()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for k, v := range r.specs {
		c.specs[k] = v
	}
	return c
}
