package stages

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkSpec is the conformance check that every built-in spec passes, and
// that a spec of another package can be held to as well: it is documented,
// its parameters are well-formed, and it builds from its required
// parameters alone. sample gives a value for a required parameter.
func checkSpec(t *testing.T, s *Spec, sample func(p *Param) any) {
	t.Helper()
	if s.Role() == 0 {
		t.Errorf("%s: no role", s.Name)
	}
	if strings.TrimSpace(s.Summary) == "" || strings.Contains(s.Summary, "\n") {
		t.Errorf("%s %s: summary must be one line, got %q", s.Role(), s.Name, s.Summary)
	}
	if strings.HasSuffix(s.Summary, ".") {
		t.Errorf("%s %s: summary ends with a period", s.Role(), s.Name)
	}
	if strings.TrimSpace(s.Doc) == "" {
		t.Errorf("%s %s: no doc", s.Role(), s.Name)
	}
	raw := map[string]any{}
	for i := range s.Params {
		p := &s.Params[i]
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s %s: parameter %s has no doc", s.Role(), s.Name, p.Name)
		}
		if p.Type.String() == "unknown" {
			t.Errorf("%s %s: parameter %s has no valid type", s.Role(), s.Name, p.Name)
		}
		if p.Required && p.Default != nil {
			t.Errorf("%s %s: parameter %s is required and has a default", s.Role(), s.Name, p.Name)
		}
		if len(p.Enum) > 0 && p.Type != TypeString {
			t.Errorf("%s %s: parameter %s has an enum but is a %s", s.Role(), s.Name, p.Name, p.Type)
		}
		if p.Default != nil {
			if !defaultHasType(*p) {
				t.Errorf("%s %s: parameter %s: default %#v is not a %s", s.Role(), s.Name, p.Name, p.Default, p.Type)
			}
			// The default, written in YAML, converts back to itself.
			got, err := p.Convert(asYAML(p.Default))
			if err != nil || !reflect.DeepEqual(got, p.Default) {
				t.Errorf("%s %s: parameter %s: default %#v converts to %#v, %v", s.Role(), s.Name, p.Name, p.Default, got, err)
			}
		}
		if p.Required {
			raw[p.Name] = sample(p)
		}
	}
	params, errs := s.ParseParams(raw)
	if len(errs) > 0 {
		t.Fatalf("%s %s: required parameters %v: %v", s.Role(), s.Name, raw, errs)
	}
	var closer interface{ Close(context.Context) error }
	var err error
	switch s.Role() {
	case RoleSource:
		closer, err = s.NewSource(params, Info{Stdin: strings.NewReader("")})
	case RoleTransform:
		closer, err = s.NewTransform(params, Info{})
	case RoleSink:
		closer, err = s.NewSink(params, Info{Stdout: &strings.Builder{}})
	}
	if err != nil {
		t.Fatalf("%s %s: build with %v: %v", s.Role(), s.Name, raw, err)
	}
	if err := closer.Close(context.Background()); err != nil {
		t.Errorf("%s %s: close: %v", s.Role(), s.Name, err)
	}
}

// asYAML returns v as YAML decoding would give it.
func asYAML(v any) any {
	switch x := v.(type) {
	case time.Duration:
		return x.String()
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	return v
}

func TestBuiltinConformance(t *testing.T) {
	for _, s := range NewRegistry().Specs() {
		t.Run(s.Role().String()+"/"+s.Name, func(t *testing.T) {
			dir := t.TempDir()
			checkSpec(t, s, func(p *Param) any {
				switch {
				case p.Name == "path" && s.Role() == RoleSource:
					return writeFile(t, dir, "in.jsonl", "{}\n")
				case p.Name == "path":
					return filepath.Join(dir, "out", "out.jsonl")
				case p.Type == TypeExpr:
					return "true"
				case p.Type == TypeInt:
					return 1
				}
				return "items"
			})
		})
	}
}

// A path-based stage built on a path that does not exist says which.
func TestBuiltinConformanceMissingPath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope", "in.jsonl")
	s := lookup(t, RoleSource, "file")
	_, err := s.NewSource(parse(t, s, map[string]any{"path": missing}), Info{})
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file source on a missing path: got %v", err)
	}
}

func TestBuiltins(t *testing.T) {
	r := NewRegistry()
	want := map[Role][]string{
		RoleSource:    {"file", "generate", "stdin"},
		RoleTransform: {"filter", "map", "split"},
		RoleSink:      {"discard", "file", "stdout"},
	}
	for role, names := range want {
		if got := r.Names(role); !reflect.DeepEqual(got, names) {
			t.Errorf("%s types: got %v, want %v", role, got, names)
		}
	}
}
