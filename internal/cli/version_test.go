package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

func TestVersionText(t *testing.T) {
	head := "sluice %s (" + runtime.Version() + ", nats-server " + natsserver.VERSION + ")"
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	const rev = "605865e0c1d2b3a4f5e6d7c8b9a0f1e2d3c4b5a6"
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, fmt.Sprintf(head, "(devel)")},
		{"no version", &debug.BuildInfo{}, fmt.Sprintf(head, "(devel)")},
		{"a release", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, fmt.Sprintf(head, "v1.2.3")},
		{"a checkout", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261203093257-605865e0c1d2"},
			Settings: vcs("vcs", "git", "vcs.revision", rev, "vcs.time", "2026-12-03T09:32:57Z", "vcs.modified", "false")},
			fmt.Sprintf(head, "v0.0.0-20261203093257-605865e0c1d2") + "\nrevision " + rev + " (2026-12-03T09:32:57Z)"},
		{"a modified checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", rev, "vcs.time", "2026-12-03T09:32:57Z", "vcs.modified", "true")},
			fmt.Sprintf(head, "(devel)") + "\nrevision " + rev + " (2026-12-03T09:32:57Z, modified)"},
		{"a revision alone", &debug.BuildInfo{Settings: vcs("vcs.revision", rev)},
			fmt.Sprintf(head, "(devel)") + "\nrevision " + rev},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionText(tt.bi); got != tt.want {
				t.Errorf("versionText =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
