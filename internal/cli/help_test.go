package cli

import (
	"context"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// sharedFlagNames are the flags that several commands share.
var sharedFlagNames = []string{"config", "plugin", "nats", "store-dir", "sync", "log-level", "log-format"}

// TestHelpFlags: the help of each command lists the shared flags that
// apply to it and no others, and a command refuses the others.
func TestHelpFlags(t *testing.T) {
	settings := []string{"config", "log-level", "log-format"}
	tests := []struct {
		cmd  []string
		want []string
	}{
		{[]string{"run"}, append(settings, "plugin", "nats", "store-dir", "sync")},
		{[]string{"dlq", "list"}, append(settings, "nats", "store-dir", "sync")},
		{[]string{"dlq", "replay"}, append(settings, "nats", "store-dir", "sync")},
		{[]string{"server"}, append(settings, "store-dir", "sync")},
		{[]string{"worker"}, append(settings, "plugin", "nats")},
		{[]string{"deploy"}, append(settings, "plugin", "nats")},
		{[]string{"undeploy"}, append(settings, "nats")},
		{[]string{"status"}, append(settings, "nats", "store-dir")},
		{[]string{"tap"}, append(settings, "nats", "store-dir")},
		{[]string{"top"}, append(settings, "nats", "store-dir")},
		{[]string{"validate"}, []string{"plugin"}},
		{[]string{"lint"}, []string{"plugin"}},
		{[]string{"graph"}, []string{"plugin"}},
		{[]string{"stages"}, []string{"plugin"}},
		{[]string{"schema"}, []string{"plugin"}},
		{[]string{"test"}, append(settings, "plugin")},
		{[]string{"version"}, nil},
		{nil, nil}, // sluice --help
	}
	inEmptyDir(t)
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"sluice"}, tt.cmd...), " "), func(t *testing.T) {
			code, stdout, stderr := sluice(t, append(slices.Clone(tt.cmd), "--help")...)
			if code != ExitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			for _, name := range sharedFlagNames {
				listed := regexp.MustCompile(`(?m)^\s+--` + name + ` `).MatchString(stdout)
				if want := slices.Contains(tt.want, name); listed != want {
					t.Errorf("--%s listed: %v, want %v:\n%s", name, listed, want, stdout)
				}
			}
		})
	}
	// A flag that does not apply is refused, not ignored.
	code, _, stderr := sluice(t, "validate", "--nats", "nats://127.0.0.1:4222", "x.yaml")
	if code != ExitUsage || !strings.Contains(stderr, "unknown flag: --nats (a flag of deploy, dlq, run, status, tap, top, undeploy, worker, not of validate)") {
		t.Errorf("validate --nats: exit %d, stderr %q", code, stderr)
	}
}

// TestSharedFlagsSetSettings: on each command that has them, the shared
// flags set their settings, before or after the command's name, and so do
// the environment variables.
func TestSharedFlagsSetSettings(t *testing.T) {
	dir := inEmptyDir(t)
	writeFile(t, dir, "x.yaml", "name: x\n")
	bad := `(got "loud")`
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"run", []string{"run", "--log-level", "loud", "x.yaml"}, nil, bad},
		{"before the command", []string{"--log-level", "loud", "status"}, nil, bad},
		{"dlq list", []string{"dlq", "list", "--log-level", "loud", "p"}, nil, bad},
		{"dlq before its subcommand", []string{"dlq", "--log-level", "loud", "purge", "p"}, nil, bad},
		{"server", []string{"server", "--log-level", "loud"}, nil, bad},
		{"worker", []string{"worker", "--log-level", "loud"}, nil, bad},
		{"undeploy", []string{"undeploy", "--log-level", "loud", "p"}, nil, bad},
		{"status", []string{"status", "--log-level", "loud"}, nil, bad},
		{"tap", []string{"tap", "--log-level", "loud", "p", "s"}, nil, bad},
		{"top", []string{"top", "--once", "--log-level", "loud"}, nil, bad},
		{"sync of run", []string{"run", "--sync", "sometimes", "x.yaml"}, nil, "sometimes"},
		{"sync of server", []string{"server", "--sync", "sometimes"}, nil, "sometimes"},
		{"log format", []string{"status", "--log-format", "xml"}, nil, `(got "xml")`},
		{"environment, no flag", []string{"undeploy", "p"}, map[string]string{"SLUICE_LOG_LEVEL": "loud"}, bad},
		{"environment of a flag the command lacks", []string{"undeploy", "p"}, map[string]string{"SLUICE_SYNC": "sometimes"}, "sometimes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			// A flag left unbound would have the command run: the context
			// ends it.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			errOut := newLockedBuffer()
			code := MainContext(ctx, tt.args, strings.NewReader(""), io.Discard, errOut)
			stderr := errOut.String()
			if code != ExitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q, want %d and %q", code, stderr, ExitUsage, tt.want)
			}
		})
	}
}

// TestCompletion: the completion command is listed and writes a script.
func TestCompletion(t *testing.T) {
	inEmptyDir(t)
	_, stdout, _ := sluice(t, "--help")
	if !regexp.MustCompile(`(?m)^  completion `).MatchString(stdout) {
		t.Errorf("completion not listed:\n%s", stdout)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, stdout, stderr := sluice(t, "completion", shell)
		if code != ExitOK || stderr != "" || !strings.Contains(stdout, "sluice") {
			t.Errorf("completion %s: exit %d, stderr %q, %d bytes", shell, code, stderr, len(stdout))
		}
	}
}
