package stages

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// checkSpec is the declaration check that every built-in spec passes: it
// is documented and its parameters are well-formed. How each type behaves
// in a pipeline is the conformance suite of the runner package.
func checkSpec(t *testing.T, s *Spec) {
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
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, s := range x {
			out[k] = s
		}
		return out
	case []map[string]string:
		out := make([]any, len(x))
		for i, m := range x {
			out[i] = asYAML(m)
		}
		return out
	}
	return v
}

func TestBuiltinConformance(t *testing.T) {
	for _, s := range NewRegistry().Specs() {
		t.Run(s.Role().String()+"/"+s.Name, func(t *testing.T) { checkSpec(t, s) })
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
		RoleSource:    {"file", "generate", "http", "jetstream", "kv_watch", "nats", "stdin"},
		RoleTransform: {"dedupe", "delay", "exec", "filter", "jq", "map", "parse", "rate_limit", "split", "switch", "template", "window"},
		RoleSink:      {"discard", "file", "http", "jetstream", "kv", "nats", "sql", "stdout"},
	}
	for role, names := range want {
		if got := r.Names(role); !reflect.DeepEqual(got, names) {
			t.Errorf("%s types: got %v, want %v", role, got, names)
		}
	}
}
