package cluster_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages/builtin"
)

// deploySpec deploys spec as it is, validated without a policy: as a
// deployer would who does not check what the workers allow.
func deploySpec(t *testing.T, nc *nats.Conn, file, spec string) {
	t.Helper()
	p, err := pipeline.Parse(file, []byte(spec), pipeline.Options{Registry: builtin.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cluster.Deploy(ctx, nc, p, []byte(spec)); err != nil {
		t.Fatal(err)
	}
}

// startPolicyWorker runs a worker under policy until the test ends.
func startPolicyWorker(t *testing.T, nc *nats.Conn, id string, policy pipeline.Policy) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		err := cluster.RunWorker(ctx, nc, cluster.WorkerOptions{ID: id, LeaseTTL: 2 * time.Second, StopTimeout: 10 * time.Second,
			Registry: builtin.NewRegistry(), Policy: policy})
		if err != nil {
			t.Errorf("worker %s: %v", id, err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// TestWorkerPolicy deploys, next to a pipeline that keeps running, one
// that tries what a deployed pipeline may not (read the worker's
// variables, run programs, reach files outside the data directory), to a
// worker with the default policy or one that allows more: a refused one
// is reported in the status with its file, line, stage and variable or
// parameter, and no record holds what it tried to read.
func TestWorkerPolicy(t *testing.T) {
	const secret, home = "hunter2-worker-secret", "/home/worker-home-dir"
	t.Setenv("SLUICE_NATS_PASSWORD", secret)
	t.Setenv("HOME", home)
	t.Setenv("SLUICE_VAR_X", "x-allowed")
	const gen = `name: probe
stages:
  - name: gen
    source: generate
    with: {count: 3, template: '{"n": seq}'}
`
	mid := func(transform string) string { return gen + "  - name: mid\n" + transform }
	const sink = "  - name: out\n    sink: file\n    with: {path: out.jsonl}\n"
	const script = `while read -r line; do printf '{"pw":"%s","mine":"%s","path":"%s"}\n' "$${SLUICE_NATS_PASSWORD:-unset}" "$${MINE:-unset}" "$${PATH:+set}"; done`
	execStage := "    transform: exec\n    with:\n      command: sh\n      env: {MINE: '${SLUICE_VAR_X}'}\n      args:\n        - -c\n        - |\n          " + script + "\n"
	tests := []struct {
		name    string
		policy  pipeline.Policy
		spec    string // OUTSIDE stands for a directory outside the data directory
		refused []string
		want    string // a line of out.jsonl in the data directory, when it runs
	}{
		{name: "worker secret", spec: mid("    transform: map\n    with: {expr: 'merge($env, {\"pw\": \"${SLUICE_NATS_PASSWORD}\"})'}\n") + sink,
			refused: []string{`probe.yaml:8:18: stage "mid": with.expr: variable "SLUICE_NATS_PASSWORD" may not be read by a deployed pipeline`}},
		{name: "worker home", spec: mid("    transform: map\n    with: {expr: 'merge($env, {\"home\": \"${HOME}\"})'}\n") + sink,
			refused: []string{`probe.yaml:8:18: stage "mid": with.expr: variable "HOME" may not be read`}},
		{name: "secret with a default", spec: mid("    transform: map\n    with: {expr: 'merge($env, {\"pw\": \"${SLUICE_NATS_PASSWORD:-none}\"})'}\n") + sink,
			refused: []string{`variable "SLUICE_NATS_PASSWORD" may not be read`}},
		{name: "allowed variable", spec: mid("    transform: map\n    with: {expr: 'merge($env, {\"x\": \"${SLUICE_VAR_X}\"})'}\n") + sink,
			want: `{"n":0,"x":"x-allowed"}`},
		{name: "exec not allowed", spec: mid(execStage) + sink,
			refused: []string{`probe.yaml:7:16: stage "mid": transform "exec" runs programs on the worker, which does not allow it`}},
		{name: "exec allowed, without the worker's environment", policy: pipeline.Policy{AllowExec: true}, spec: mid(execStage) + sink,
			want: `{"pw":"unset","mine":"x-allowed","path":"set"}`},
		{name: "sink path climbing out", spec: gen + "  - name: out\n    sink: file\n    with: {path: ../x.jsonl}\n",
			refused: []string{`probe.yaml:8:18: stage "out": sink "file": parameter "path": path "../x.jsonl" is outside the data directory`}},
		{name: "source path outside", spec: "name: probe\nstages:\n  - name: read\n    source: file\n    with: {path: /etc/passwd, format: lines}\n" + sink,
			refused: []string{`stage "read": source "file": parameter "path": path "/etc/passwd" is outside the data directory`}},
		{name: "absolute path in the data directory", spec: gen + "  - name: out\n    sink: file\n    with: {path: DATA/out.jsonl}\n",
			want: `{"n":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := natstest.Connect(t, natstest.Server(t))
			root := t.TempDir()
			data := filepath.Join(root, "data")
			if err := os.Mkdir(data, 0o755); err != nil {
				t.Fatal(err)
			}
			tt.policy.DataDir = data
			startPolicyWorker(t, nc, "w1", tt.policy)
			deploySpec(t, nc, "steady.yaml", "name: steady\nstages:\n  - {name: gen, source: generate, with: {count: 5}}\n  - {name: out, sink: file, with: {path: steady.jsonl}}\n")
			deploySpec(t, nc, "probe.yaml", strings.ReplaceAll(tt.spec, "DATA", data))

			// The other pipeline runs whatever happens to this one.
			waitRun(t, nc, "steady", 1)
			if n := len(readLines(t, filepath.Join(data, "steady.jsonl"))); n != 5 {
				t.Errorf("steady pipeline wrote %d records, want 5", n)
			}
			if tt.refused != nil {
				var errs []string
				natstest.WaitFor(t, 30*time.Second, "the worker to report the refusal", func() bool {
					errs = status(t, nc, "probe").Pipelines[0].Errors
					return len(errs) > 0
				})
				got := strings.Join(errs, "\n")
				for _, want := range tt.refused {
					if !strings.Contains(got, "w1: ") || !strings.Contains(got, want) {
						t.Errorf("status errors:\n%s\nwant one from w1 with %q", got, want)
					}
				}
				for _, value := range []string{secret, home} {
					if strings.Contains(got, value) {
						t.Errorf("status errors hold the worker's value %q", value)
					}
				}
				if _, err := os.Stat(filepath.Join(data, "out.jsonl")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the refused pipeline wrote out.jsonl (%v)", err)
				}
				if _, err := os.Stat(filepath.Join(root, "x.jsonl")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the refused pipeline wrote outside the data directory (%v)", err)
				}
				return
			}
			waitRun(t, nc, "probe", 1)
			lines := readLines(t, filepath.Join(data, "out.jsonl"))
			if len(lines) != 3 || lines[0] != tt.want {
				t.Errorf("out.jsonl:\n%s\nwant 3 records, the first %s", strings.Join(lines, "\n"), tt.want)
			}
			for _, l := range lines {
				if strings.Contains(l, secret) || strings.Contains(l, home) {
					t.Errorf("a record holds a worker's variable: %s", l)
				}
			}
		})
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestWorkerPolicyInvalid: a worker whose policy does not validate does
// not start.
func TestWorkerPolicyInvalid(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	for _, policy := range []pipeline.Policy{
		{AllowEnv: []string{"BAD-PREFIX"}},
		{DataDir: filepath.Join(t.TempDir(), "missing")},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := cluster.RunWorker(ctx, nc, cluster.WorkerOptions{ID: "w", Registry: builtin.NewRegistry(), Policy: policy})
		cancel()
		if !errors.Is(err, cluster.ErrInvalidOption) || !errors.Is(err, pipeline.ErrInvalidPolicy) {
			t.Errorf("RunWorker with policy %+v: %v, want ErrInvalidOption and ErrInvalidPolicy", policy, err)
		}
	}
}
