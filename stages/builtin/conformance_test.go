package builtin

import (
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestBuiltins(t *testing.T) {
	r := stagetest.NewRegistry()
	want := map[stages.Role][]string{
		stages.RoleSource:    {"file", "generate", "http", "jetstream", "kv_watch", "nats", "stdin"},
		stages.RoleTransform: {"dedupe", "delay", "exec", "filter", "jq", "map", "parse", "rate_limit", "split", "switch", "template", "window"},
		stages.RoleSink:      {"discard", "file", "http", "jetstream", "kv", "nats", "sql", "stdout"},
	}
	for role, names := range want {
		if got := r.Names(role); !reflect.DeepEqual(got, names) {
			t.Errorf("%s types: got %v, want %v", role, got, names)
		}
	}
}
