package window

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestWindowParams(t *testing.T) {
	agg := map[string]any{"n": "count"}
	tests := []struct {
		name    string
		raw     map[string]any
		wantErr string
	}{
		{"tumbling", map[string]any{"type": "tumbling", "size": "1m", "key": "user", "aggregate": agg}, ""},
		{"sliding", map[string]any{"type": "sliding", "size": "1m", "slide": "10s", "key": "user", "aggregate": agg}, ""},
		{"session", map[string]any{"type": "session", "gap": "5m", "key": "user", "aggregate": map[string]any{"n": "count", "s": "sum(v)", "u": "distinct_count(page)"}}, ""},
		{"no size", map[string]any{"type": "tumbling", "key": "user", "aggregate": agg}, "size: a tumbling window needs a size above 0"},
		{"slide on tumbling", map[string]any{"type": "tumbling", "size": "1m", "slide": "1s", "key": "user", "aggregate": agg}, "slide: is for sliding windows"},
		{"slide above size", map[string]any{"type": "sliding", "size": "1m", "slide": "2m", "key": "user", "aggregate": agg}, "slide: a sliding window needs a slide above 0 and at most size (1m0s)"},
		{"gap on tumbling", map[string]any{"type": "tumbling", "size": "1m", "gap": "1s", "key": "user", "aggregate": agg}, "gap: is for session windows"},
		{"no gap", map[string]any{"type": "session", "key": "user", "aggregate": agg}, "gap: a session window needs a gap above 0"},
		{"size on session", map[string]any{"type": "session", "gap": "1s", "size": "1m", "key": "user", "aggregate": agg}, "size: is for tumbling and sliding windows"},
		{"no aggregate", map[string]any{"type": "session", "gap": "1s", "key": "user", "aggregate": map[string]any{}}, "aggregate: want at least one output field"},
		{"unknown function", map[string]any{"type": "session", "gap": "1s", "key": "user", "aggregate": map[string]any{"m": "median(v)"}}, `field "m": unknown aggregation "median"`},
		{"no argument", map[string]any{"type": "session", "gap": "1s", "key": "user", "aggregate": map[string]any{"s": "sum()"}}, `field "s": sum needs an expression`},
		{"bad expression", map[string]any{"type": "session", "gap": "1s", "key": "user", "aggregate": map[string]any{"s": "sum(v +)"}}, `field "s": sum: expression does not compile`},
		{"not a call", map[string]any{"type": "session", "gap": "1s", "key": "user", "aggregate": map[string]any{"s": "v"}}, `want count or FUNC(EXPRESSION)`},
		{"reserved field", map[string]any{"type": "session", "gap": "1s", "key": "user", "aggregate": map[string]any{"key": "count"}}, `field "key": the window sets it itself`},
	}
	s := stagetest.Lookup(t, stages.RoleTransform, "window")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, errs := s.ParseParams(tt.raw)
			var err error
			if len(errs) > 0 {
				err = errs[0]
			} else {
				err = s.Check(p)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}
