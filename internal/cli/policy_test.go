package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
)

// policyProbe is a pipeline whose transform stage mid is MID and whose
// sink writes PATH.
const policyProbe = `name: probe
stages:
  - name: gen
    source: generate
    with: {count: 3, template: '{"n": seq}'}
  - name: mid
MID
  - name: out
    sink: file
    with: {path: PATH}
`

func probe(mid, path string) string {
	return strings.NewReplacer("MID", mid, "PATH", path).Replace(policyProbe)
}

const execMid = "    transform: exec\n    with: {command: cat}"

// TestDeployChecksThePolicy: deploy refuses at once, with the file, line,
// stage and variable or parameter, what workers of the same settings
// would refuse.
func TestDeployChecksThePolicy(t *testing.T) {
	url := natstest.Server(t).ClientURL()
	t.Setenv("SLUICE_VAR_X", "x")
	mapMid := func(v string) string {
		return "    transform: map\n    with: {expr: 'merge($env, {\"v\": \"" + v + "\"})'}"
	}
	tests := []struct {
		name  string
		spec  string
		flags []string
		env   map[string]string
		want  string // in stderr; "" for a deploy that goes through
	}{
		{name: "worker secret", spec: probe(mapMid("${SLUICE_NATS_PASSWORD}"), "out.jsonl"),
			want: `p.yaml:8:18: stage "mid": with.expr: variable "SLUICE_NATS_PASSWORD" may not be read by a deployed pipeline: only names beginning with SLUICE_VAR_`},
		{name: "home", spec: probe(mapMid("${HOME}"), "out.jsonl"),
			want: `p.yaml:8:18: stage "mid": with.expr: variable "HOME" may not be read`},
		{name: "default prefix", spec: probe(mapMid("${SLUICE_VAR_X}"), "out.jsonl")},
		{name: "prefix flag", spec: probe(mapMid("${TEAM_A:-a}"), "out.jsonl"), flags: []string{"--allow-env", "TEAM_,OTHER_"}},
		{name: "prefix setting", spec: probe(mapMid("${TEAM_A:-a}"), "out.jsonl"), env: map[string]string{"SLUICE_ALLOW_ENV": "TEAM_"}},
		{name: "prefix flag replaces the default", spec: probe(mapMid("${SLUICE_VAR_X}"), "out.jsonl"), flags: []string{"--allow-env", "TEAM_"},
			want: `variable "SLUICE_VAR_X" may not be read by a deployed pipeline: only names beginning with TEAM_`},
		{name: "exec", spec: probe(execMid, "out.jsonl"),
			want: `p.yaml:7:16: stage "mid": transform "exec" runs programs on the worker, which does not allow it (allow_exec, --allow-exec)`},
		{name: "exec allowed", spec: probe(execMid, "out.jsonl"), flags: []string{"--allow-exec"}},
		{name: "path climbing out", spec: probe(mapMid("a"), "../x.jsonl"),
			want: `p.yaml:11:18: stage "out": sink "file": parameter "path": path "../x.jsonl" is outside the data directory`},
		{name: "absolute path", spec: probe(mapMid("a"), "/etc/passwd"),
			want: `path "/etc/passwd" is outside the data directory`},
		{name: "absolute path in the data dir", spec: probe(mapMid("a"), "/srv/sluice/out.jsonl"), flags: []string{"--data-dir", "/srv/sluice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := inEmptyDir(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			file := writeFile(t, dir, "p.yaml", tt.spec)
			args := append([]string{"deploy", "--nats", url, file}, tt.flags...)
			code, stdout, stderr := sluice(t, args...)
			if tt.want == "" {
				if code != ExitOK || !strings.HasPrefix(stdout, "deployed pipeline probe") {
					t.Fatalf("deploy: exit %d\n%s%s", code, stdout, stderr)
				}
				return
			}
			if code != ExitUsage || !strings.Contains(stderr, tt.want) {
				t.Fatalf("deploy: exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr, ExitUsage, tt.want)
			}
		})
	}
}

// TestWorkerPolicyFlags runs `sluice worker` with --allow-exec and
// --data-dir: the exec pipeline that a worker without them refuses runs,
// and writes its relative path under the data directory.
func TestWorkerPolicyFlags(t *testing.T) {
	url := natstest.Server(t).ClientURL()
	dir := inEmptyDir(t)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		MainContext(ctx, []string{"worker", "--nats", url, "--id", "w1", "--lease-ttl", "2s", "--allow-exec", "--data-dir", data, "--log-format", "text"},
			strings.NewReader(""), newLockedBuffer(), newLockedBuffer())
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	file := writeFile(t, dir, "p.yaml", probe(execMid, "out/probe.jsonl"))
	if code, stdout, stderr := sluice(t, "deploy", "--nats", url, "--allow-exec", file); code != ExitOK {
		t.Fatalf("deploy: exit %d\n%s%s", code, stdout, stderr)
	}
	out := filepath.Join(data, "out", "probe.jsonl")
	natstest.WaitFor(t, time.Minute, "the exec pipeline's output under the data directory", func() bool {
		b, err := os.ReadFile(out)
		return err == nil && strings.Count(string(b), "\n") == 3
	})
}
