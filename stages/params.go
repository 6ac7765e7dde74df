package stages

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// ParamType is the type of a stage parameter.
type ParamType int

// The parameter types. YAML values convert as [Param.Convert] says.
const (
	TypeString     ParamType = iota + 1 // any scalar, as text
	TypeInt                             // an integer
	TypeFloat                           // a number
	TypeBool                            // true or false
	TypeDuration                        // a Go duration such as "250ms" or "1h30m"
	TypeExpr                            // an expr-lang expression, compiled at validation
	TypeStringList                      // a list of scalars, or one scalar
	TypeStringMap                       // a mapping of names to scalars
	TypeMapList                         // a list of mappings of names to scalars
)

// String names the type as the docs and `sluice stages` show it.
func (t ParamType) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeInt:
		return "int"
	case TypeFloat:
		return "float"
	case TypeBool:
		return "bool"
	case TypeDuration:
		return "duration"
	case TypeExpr:
		return "expression"
	case TypeStringList:
		return "list of strings"
	case TypeStringMap:
		return "mapping of strings"
	case TypeMapList:
		return "list of mappings"
	}
	return "unknown"
}

// Param declares one parameter of a stage type. The same declaration drives
// validation, defaults and the generated documentation.
type Param struct {
	Name     string
	Type     ParamType
	Doc      string
	Required bool
	// Default is the value used when the parameter is absent, of the Go type
	// that Convert returns for Type; nil means no default.
	Default any
	// Enum, for TypeString, lists the allowed values.
	Enum []string
	// Path tells that the value (a TypeString, or each item of a
	// TypeStringList) is a file-system path the stage opens, reads or
	// writes. Validation under a policy (pipeline.Policy: a pipeline deployed to
	// a worker) resolves a relative one under the worker's data directory
	// and refuses one outside it.
	Path bool
}

// Convert checks a value decoded from YAML (string, int, float64, bool, or
// []any of those) against the parameter and returns it as the Go type of
// the parameter: string (TypeString, TypeExpr), int, float64, bool,
// time.Duration, []string, map[string]string (TypeStringMap) or
// []map[string]string (TypeMapList). Errors wrap [ErrInvalidParam].
func (p *Param) Convert(v any) (any, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidParam, p.Name, fmt.Sprintf(format, a...))
	}
	switch p.Type {
	case TypeString:
		s, ok := scalarString(v)
		if !ok {
			return nil, bad("want a string, got %s", yamlKind(v))
		}
		if len(p.Enum) > 0 && !slices.Contains(p.Enum, s) {
			return nil, bad("must be one of %s (got %q)", strings.Join(p.Enum, ", "), s)
		}
		return s, nil
	case TypeExpr:
		s, ok := scalarString(v)
		if !ok {
			return nil, bad("want an expression, got %s", yamlKind(v))
		}
		if _, err := CompileExpr(s); err != nil {
			return nil, bad("expression does not compile: %s", errtext.OneLine(err.Error()))
		}
		return s, nil
	case TypeInt:
		switch x := v.(type) {
		case int:
			return x, nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
				return int(x), nil
			}
		case string:
			if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
				return n, nil
			}
		}
		return nil, bad("want an integer, got %s", describe(v))
	case TypeFloat:
		switch x := v.(type) {
		case int:
			return float64(x), nil
		case float64:
			return x, nil
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return f, nil
			}
		}
		return nil, bad("want a number, got %s", describe(v))
	case TypeBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return b, nil
			}
		}
		return nil, bad("want true or false, got %s", describe(v))
	case TypeDuration:
		s, ok := v.(string)
		if !ok {
			return nil, bad("want a duration such as \"500ms\" or \"2m\", got %s", describe(v))
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return nil, bad("want a duration such as \"500ms\" or \"2m\", got %q", s)
		}
		return d, nil
	case TypeStringList:
		if s, ok := scalarString(v); ok {
			return []string{s}, nil
		}
		list, ok := v.([]any)
		if !ok {
			return nil, bad("want a list of strings, got %s", yamlKind(v))
		}
		out := make([]string, len(list))
		for i, e := range list {
			s, ok := scalarString(e)
			if !ok {
				return nil, bad("item %d: want a string, got %s", i, yamlKind(e))
			}
			out[i] = s
		}
		return out, nil
	case TypeStringMap:
		m, err := stringMap(v)
		if err != nil {
			return nil, bad("%s", err)
		}
		return m, nil
	case TypeMapList:
		list, ok := v.([]any)
		if !ok {
			return nil, bad("want a list of mappings, got %s", yamlKind(v))
		}
		out := make([]map[string]string, len(list))
		for i, e := range list {
			m, err := stringMap(e)
			if err != nil {
				return nil, bad("item %d: %s", i+1, err)
			}
			out[i] = m
		}
		return out, nil
	}
	return nil, bad("unknown parameter type %d", p.Type)
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int:
		return strconv.Itoa(x), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// stringMap converts a YAML mapping of scalars.
func stringMap(v any) (map[string]string, error) {
	raw, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a mapping, got %s", yamlKind(v))
	}
	out := make(map[string]string, len(raw))
	for k, e := range raw {
		s, ok := scalarString(e)
		if !ok {
			return nil, fmt.Errorf("%s: want a string, got %s", k, yamlKind(e))
		}
		out[k] = s
	}
	return out, nil
}

func yamlKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return "a scalar"
}

func describe(v any) string {
	if s, ok := scalarString(v); ok {
		return strconv.Quote(s)
	}
	return yamlKind(v)
}

// ParamError locates an error of a spec's Check function on one parameter so
// that validation can point at its line in the pipeline file.
type ParamError struct {
	Param string
	Err   error
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Err.Error() }

func (e *ParamError) Unwrap() error { return e.Err }

// Params holds the converted parameters of one stage, defaults applied.
// Accessors return the zero value for an absent parameter without a default.
type Params struct {
	values map[string]any
}

// NewParams wraps converted values (see [Param.Convert]). Use
// [Spec.ParseParams] to convert and default raw values.
func NewParams(values map[string]any) Params { return Params{values: values} }

// With returns a copy of p in which the parameter name has the converted
// value v; p is left as it was.
func (p Params) With(name string, v any) Params {
	values := make(map[string]any, len(p.values)+1)
	for k, x := range p.values {
		values[k] = x
	}
	values[name] = v
	return Params{values: values}
}

// Has reports whether the parameter was given or has a default.
func (p Params) Has(name string) bool { _, ok := p.values[name]; return ok }

// Get returns the converted value of a parameter, or nil.
func (p Params) Get(name string) any { return p.values[name] }

// String returns a TypeString or TypeExpr parameter.
func (p Params) String(name string) string { s, _ := p.values[name].(string); return s }

// Int returns a TypeInt parameter.
func (p Params) Int(name string) int { n, _ := p.values[name].(int); return n }

// Float returns a TypeFloat parameter.
func (p Params) Float(name string) float64 { f, _ := p.values[name].(float64); return f }

// Bool returns a TypeBool parameter.
func (p Params) Bool(name string) bool { b, _ := p.values[name].(bool); return b }

// Duration returns a TypeDuration parameter.
func (p Params) Duration(name string) time.Duration {
	d, _ := p.values[name].(time.Duration)
	return d
}

// Strings returns a TypeStringList parameter.
func (p Params) Strings(name string) []string { s, _ := p.values[name].([]string); return s }

// StringMap returns a TypeStringMap parameter.
func (p Params) StringMap(name string) map[string]string {
	m, _ := p.values[name].(map[string]string)
	return m
}

// MapList returns a TypeMapList parameter.
func (p Params) MapList(name string) []map[string]string {
	l, _ := p.values[name].([]map[string]string)
	return l
}

// ParamErrorf reports a bad value of the parameter name the way
// [Param.Convert] does: the error wraps [ErrInvalidParam], its text is
// "NAME: " and the formatted reason, and it is a *[ParamError], so that
// validation points at the parameter's line. For a spec's Check function
// and for constructors.
func ParamErrorf(name, format string, a ...any) error {
	return &ParamError{Param: name, Err: fmt.Errorf("%w: %s: %s", ErrInvalidParam, name, fmt.Sprintf(format, a...))}
}

// CompileParam compiles the expression of the [TypeExpr] parameter name,
// which must be set and not empty; an error is a [ParamErrorf] on name.
// Validation has already compiled it once: a stage compiles its own copy
// because an [Expr] is not safe for concurrent use.
func CompileParam(p Params, name string) (*Expr, error) {
	src := p.String(name)
	if src == "" {
		return nil, ParamErrorf(name, "must not be empty")
	}
	e, err := CompileExpr(src)
	if err != nil {
		return nil, ParamErrorf(name, "expression does not compile: %s", errtext.OneLine(err.Error()))
	}
	return e, nil
}
