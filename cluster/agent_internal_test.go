package cluster

import "testing"

func TestWorkerMatchesStages(t *testing.T) {
	tests := []struct {
		patterns []string
		p, s     string
		want     bool
	}{
		{nil, "orders", "read", true},
		{[]string{"read"}, "orders", "read", true},
		{[]string{"read"}, "orders", "write", false},
		{[]string{"orders.*"}, "orders", "write", true},
		{[]string{"orders.*"}, "clicks", "write", false},
		{[]string{"*.enrich", "write"}, "clicks", "enrich", true},
		{[]string{"en*"}, "clicks", "enrich", true},
	}
	for _, tt := range tests {
		a := &agent{opts: WorkerOptions{Stages: tt.patterns}}
		if got := a.matches(tt.p, tt.s); got != tt.want {
			t.Errorf("patterns %q on %s.%s: got %v, want %v", tt.patterns, tt.p, tt.s, got, tt.want)
		}
	}
}

func TestValidWorkerID(t *testing.T) {
	for id, want := range map[string]bool{
		"w1": true, "host-a_2": true, "": false, "a.b": false, "a/b": false, "a b": false,
	} {
		if got := validWorkerID(id); got != want {
			t.Errorf("validWorkerID(%q) = %v, want %v", id, got, want)
		}
	}
}
