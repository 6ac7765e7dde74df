package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/natstest"
)

// clusterRecords is the size of the cluster test's job.
const clusterRecords = 100_000

// clusterPipeline is faultPipeline, of clusterRecords records, with three
// copies of every stream, and streams that forget message IDs sooner than
// a killed worker's inputs are delivered again (longOutageSettings).
var clusterPipeline = strings.NewReplacer(
	"name: faults\nsettings:\n", "name: spread\nsettings:\n  replicas: 3\n",
	"count: 200000", "count: 100000",
	"ack_wait: 2s", longOutageSettings,
).Replace(faultPipeline)

// workerProc is a `sluice worker` subprocess.
type workerProc struct {
	id     string
	cmd    *exec.Cmd
	stderr *lockedBuffer
}

// leaseTTL is the workers' lease time in the cluster test.
const leaseTTL = 2 * time.Second

func startWorkerProc(t *testing.T, bin, dir, urls, id string) *workerProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "worker", "--nats", urls, "--id", id,
		"--lease-ttl", leaseTTL.String(), "--log-format", "text")
	cmd.Dir = dir
	w := &workerProc{id: id, cmd: cmd, stderr: newLockedBuffer()}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker %s:\n%s", id, w.stderr.String())
		}
	})
	return w
}

// sluiceCmd runs the sluice binary to its end and returns its stdout.
func sluiceCmd(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := trySluice(bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func trySluice(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("sluice %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// clusterStatus returns the status of pipeline spread. While the cluster
// settles after a node stopped, status may fail: then it logs why and
// returns false.
func clusterStatus(t *testing.T, bin, urls string) (cluster.StatusReport, bool) {
	t.Helper()
	var st cluster.StatusReport
	out, err := trySluice(bin, "status", "--json", "--nats", urls, "spread")
	if err != nil {
		t.Log(err)
		return st, false
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	return st, true
}

func workerIDs(st cluster.StatusReport) []string {
	var ids []string
	for _, w := range st.Workers {
		ids = append(ids, w.ID)
	}
	return ids
}

// TestWorkersOnCluster deploys a pipeline to two `sluice worker` processes
// on a 3-node cluster of `sluice server` processes, kills the worker that
// owns the source and writes the file with kill -9 and shuts a cluster
// node down while the job runs, and checks that the other worker takes the
// source and the file over and the job completes with every record exactly
// once.
func TestWorkersOnCluster(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	nodes := startServerCluster(t, bin, dir, 3)
	urls := clientURLs(nodes)
	out := filepath.Join(dir, "out.jsonl")
	p := writeFile(t, dir, "spread.yaml", strings.ReplaceAll(clusterPipeline, "OUT", out))

	// w1 starts first and takes both the source and the file; w2 stands
	// by for them. Killing w1 then makes w2 take both over, and what w1
	// had published but not acknowledged is published again by w2 after
	// the streams forgot it. w1 comes back after three dedup windows.
	workers := map[string]*workerProc{"w1": startWorkerProc(t, bin, dir, urls, "w1")}
	// The workers' data directory is dir, their working directory; deploy
	// checks the output path against the same.
	if got := sluiceCmd(t, bin, "deploy", "--nats", urls, "--data-dir", dir, p); got != "deployed pipeline spread version 1 (run 1)\n" {
		t.Fatalf("deploy said %q", got)
	}
	natstest.WaitFor(t, time.Minute, "w1 to run the source and the sink", func() bool {
		st, ok := clusterStatus(t, bin, urls)
		if !ok {
			return false
		}
		stg := st.Pipelines[0].Stages
		return slices.Equal(stg[0].Workers, []string{"w1"}) && slices.Equal(stg[3].Workers, []string{"w1"})
	})
	workers["w2"] = startWorkerProc(t, bin, dir, urls, "w2")
	natstest.WaitFor(t, time.Minute, "both workers running the pipeline", func() bool {
		st, ok := clusterStatus(t, bin, urls)
		if !ok {
			return false
		}
		stg := st.Pipelines[0].Stages
		return slices.Equal(workerIDs(st), []string{"w1", "w2"}) && slices.Equal(stg[1].Workers, []string{"w1", "w2"}) &&
			slices.Equal(stg[0].Standby, []string{"w2"}) && slices.Equal(stg[3].Standby, []string{"w2"})
	})
	text := sluiceCmd(t, bin, "status", "--nats", urls)
	t.Logf("status:\n%s", text)
	for _, want := range []string{"pipeline spread  version 1  run 1 running", "w1,w2", "WORKER"} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q", want)
		}
	}

	natstest.WaitFor(t, 2*time.Minute, "a fifth of the output", func() bool {
		return fileSize(out) > clusterRecords*40/5
	})
	if err := workers["w1"].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	t.Logf("killed w1 at %d bytes of output", fileSize(out))
	nodes[2].stop()
	t.Logf("stopped node n3")

	const other = "w2"
	natstest.WaitFor(t, time.Minute, "w2 to take the source and the file over", func() bool {
		st, ok := clusterStatus(t, bin, urls)
		if !ok {
			return false
		}
		stg := st.Pipelines[0].Stages
		return slices.Equal(stg[0].Workers, []string{other}) && slices.Equal(stg[3].Workers, []string{other})
	})
	// The lease expires at most leaseTTL after the killed worker's last
	// renewal; the status adds up to a heartbeat's delay.
	t.Logf("source and file taken over %s after the kill (lease time %s)", time.Since(killedAt).Round(100*time.Millisecond), leaseTTL)
	natstest.WaitFor(t, time.Minute, "the status to show one worker", func() bool {
		st, ok := clusterStatus(t, bin, urls)
		return ok && slices.Equal(workerIDs(st), []string{other})
	})
	// The outage: w1 stays down for three dedup windows.
	time.Sleep(time.Until(killedAt.Add(6 * time.Second)))
	workers["w1"] = startWorkerProc(t, bin, dir, urls, "w1")
	natstest.WaitFor(t, 3*time.Minute, "the run to finish", func() bool {
		st, ok := clusterStatus(t, bin, urls)
		return ok && st.Pipelines[0].RunState == "finished"
	})
	checkEachOnce(t, out, clusterRecords)
	if !strings.Contains(workers[other].stderr.String(), "source taken") {
		t.Errorf("worker %s did not log taking the source", other)
	}
}

// TestWaitsForTheServer: `sluice worker` and `sluice run --nats` started
// before their NATS server keep trying to connect, saying so, and go on
// once it is up; SIGTERM while they wait ends them cleanly.
func TestWaitsForTheServer(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	port := natstest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	w := startWorkerProc(t, bin, dir, url, "early")
	out := filepath.Join(dir, "out.jsonl")
	p := writeFile(t, dir, "early.yaml", `name: early
stages:
  - name: gen
    source: generate
    with: {count: 10, template: '{"n": seq}'}
  - name: out
    sink: file
    with: {path: `+out+`}
`)
	run := exec.Command(bin, "run", "--nats", url, "--log-format", "text", p)
	run.Dir = dir
	runErr := newLockedBuffer()
	run.Stderr = runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Process.Kill() })
	natstest.WaitFor(t, time.Minute, "both to say they wait for NATS", func() bool {
		return strings.Contains(w.stderr.String(), "cannot reach NATS") && strings.Contains(runErr.String(), "cannot reach NATS")
	})

	natstest.ServerOn(t, t.TempDir(), port)
	natstest.WaitFor(t, time.Minute, "the worker to join", func() bool {
		return strings.Contains(w.stderr.String(), "worker joined")
	})
	if err := run.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, runErr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines != 10 {
		t.Fatalf("the run wrote %d lines, want 10", lines)
	}

	// Stopped while it waits: exit 0.
	waiting := exec.Command(bin, "worker", "--nats", fmt.Sprintf("nats://127.0.0.1:%d", natstest.FreePort(t)), "--id", "w2", "--log-format", "text")
	stderr := newLockedBuffer()
	waiting.Stderr = stderr
	if err := waiting.Start(); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, time.Minute, "the worker to wait for NATS", func() bool {
		return strings.Contains(stderr.String(), "cannot reach NATS")
	})
	if err := waiting.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waiting.Wait(); err != nil {
		t.Fatalf("a worker stopped while waiting for NATS: %v, want exit 0\n%s", err, stderr)
	}
}
