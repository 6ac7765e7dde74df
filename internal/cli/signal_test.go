package cli

import "testing"

func TestStopsCleanly(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{[]string{"run", "p.yaml"}, true},
		{[]string{"--nats", "nats://127.0.0.1:4222", "run", "--fresh", "p.yaml"}, true},
		{[]string{"--log-level=debug", "worker", "--id", "w1"}, true},
		{[]string{"server", "--listen", "127.0.0.1:4222"}, true},
		{[]string{"validate", "p.yaml"}, false},
		{[]string{"graph", "p.yaml"}, false},
		{[]string{"stages"}, false},
		{[]string{"dlq", "list", "p"}, false},
		{[]string{"status"}, false},
		{[]string{"deploy", "p.yaml"}, false},
		{[]string{"undeploy", "p"}, false},
		{[]string{"version"}, false},
		{[]string{"help", "run"}, false},
		{[]string{"no-such-command"}, false},
		{nil, false},
	} {
		if got := StopsCleanly(tt.args); got != tt.want {
			t.Errorf("StopsCleanly(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
