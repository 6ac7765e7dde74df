package stages_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// checkSpec is the declaration check that every built-in spec passes: it
// is documented and its parameters are well-formed. How each type behaves
// in a pipeline is the conformance suite of the runner package.
func checkSpec(t *testing.T, s *stages.Spec) {
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
		if len(p.Enum) > 0 && p.Type != stages.TypeString {
			t.Errorf("%s %s: parameter %s has an enum but is a %s", s.Role(), s.Name, p.Name, p.Type)
		}
		if p.Default != nil {
			if !stages.DefaultHasType(*p) {
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
	for _, s := range builtin.NewRegistry().Specs() {
		t.Run(s.Role().String()+"/"+s.Name, func(t *testing.T) { checkSpec(t, s) })
	}
}
