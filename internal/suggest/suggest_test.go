package suggest

import "testing"

func TestClosest(t *testing.T) {
	names := []string{"name", "description", "settings", "plugins", "stages"}
	tests := []struct {
		name, word string
		candidates []string
		want       string
	}{
		{"one letter missing", "stage", names, "stages"},
		{"transposed", "setitngs", names, "settings"},
		{"case only", "Name", names, "name"},
		{"too far", "pipelines", names, ""},
		{"short word needs a close match", "ab", []string{"xy"}, ""},
		{"short word, one edit", "nme", names, "name"},
		{"the nearest wins", "plugin", []string{"plugins", "plugin_"}, "plugins"},
		{"a swap over two dropped letters", "fitler", []string{"file", "filter"}, "filter"},
		{"then the earliest", "ab_", []string{"abc", "abd"}, "abc"},
		{"exact is not a suggestion", "name", []string{"name"}, ""},
		{"no candidates", "x", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Closest(tt.word, tt.candidates...); got != tt.want {
				t.Fatalf("Closest(%q) = %q, want %q", tt.word, got, tt.want)
			}
		})
	}
}

func TestHint(t *testing.T) {
	if got, want := Hint("fitler", "filter", "map"), " (did you mean filter?)"; got != want {
		t.Fatalf("Hint = %q, want %q", got, want)
	}
	if got := Hint("zzz", "filter"); got != "" {
		t.Fatalf("Hint = %q, want none", got)
	}
}
