package runner

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// TestLocalRuns: of a chain, a process fuses each run of the stages it
// runs that a source or a transform can head.
func TestLocalRuns(t *testing.T) {
	chain := []*pipeline.Stage{
		{Name: "src", Role: stages.RoleSource},
		{Name: "m1", Role: stages.RoleTransform},
		{Name: "f", Role: stages.RoleTransform},
		{Name: "m2", Role: stages.RoleTransform},
		{Name: "out", Role: stages.RoleSink},
	}
	tests := []struct {
		local    string // the stages the process runs
		noSource bool   // a deployed run
		want     []string
	}{
		{"src m1 f m2 out", false, []string{"src>m1>f>m2>out"}},
		{"src m1 f m2 out", true, []string{"m1>f>m2>out"}},
		{"m1 f m2 out", false, []string{"m1>f>m2>out"}},
		{"src m1 m2 out", false, []string{"src>m1", "m2>out"}},
		{"src f out", false, nil},
		{"src m1", true, nil},
		{"m2 out", false, []string{"m2>out"}},
		{"out", false, nil},
	}
	for _, tt := range tests {
		units := map[string]*unit{}
		for _, name := range strings.Fields(tt.local) {
			units[name] = &unit{}
		}
		var got []string
		for _, run := range localRuns(chain, units, tt.noSource) {
			var names []string
			for _, s := range run {
				names = append(names, s.Name)
			}
			got = append(got, strings.Join(names, ">"))
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("stages %q (deployed %v): runs %q, want %q", tt.local, tt.noSource, got, tt.want)
		}
	}
}
