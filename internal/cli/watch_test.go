package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/server"
)

// endlessPipeline generates records until it is stopped, doubles them
// and writes them to out.jsonl. The sink asks for a stream before it, so
// gen and double run fused and double publishes to its stream.
const endlessPipeline = `name: watched
stages:
  - name: gen
    source: generate
    with: {rate: 200, template: '{"n": seq}'}
  - name: double
    transform: map
    with: {expr: '{"n": n, "double": n * 2}'}
  - name: out
    sink: file
    buffer: durable
    with: {path: out.jsonl}
`

// sluiceCtx runs MainContext with args, bounded by a minute.
func sluiceCtx(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, errOut := newLockedBuffer(), newLockedBuffer()
	code = MainContext(ctx, args, strings.NewReader(""), out, errOut)
	return code, out.String(), errOut.String()
}

// startLocalRun runs `sluice run` of endlessPipeline in dir, with flags, in this
// process, until the returned func stops it; that func returns the run's
// exit code and stderr.
func startLocalRun(t *testing.T, dir string, flags ...string) (stop func() (int, string)) {
	t.Helper()
	file := writeFile(t, dir, "p.yaml", endlessPipeline)
	ctx, cancel := context.WithCancel(context.Background())
	errOut := newLockedBuffer()
	var code int
	var wg sync.WaitGroup
	wg.Go(func() {
		args := append([]string{"run", "--log-format", "text"}, flags...)
		code = MainContext(ctx, append(args, file), strings.NewReader(""), newLockedBuffer(), errOut)
	})
	stopped := false
	stop = func() (int, string) {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
		return code, errOut.String()
	}
	t.Cleanup(func() { stop() })
	natstest.WaitFor(t, time.Minute, "the run's endpoint", func() bool {
		_, err := server.ReadEndpoint(filepath.Join(dir, ".sluice"))
		return err == nil
	})
	return stop
}

// TestLocalRunVisible: status, tap, dlq list and top --once reach a
// running `sluice run` through its endpoint; tap takes nothing from the
// pipeline, whose sink still gets every record once.
func TestLocalRunVisible(t *testing.T) {
	dir := inEmptyDir(t)
	stop := startLocalRun(t, dir)

	var st cluster.StatusReport
	natstest.WaitFor(t, time.Minute, "status --json to show records through every stage", func() bool {
		code, stdout, _ := sluiceCtx(t, "status", "--json")
		if code != ExitOK || json.Unmarshal([]byte(stdout), &st) != nil || len(st.Pipelines) != 1 {
			return false
		}
		for _, s := range st.Pipelines[0].Stages {
			if s.In == 0 {
				return false
			}
		}
		return true
	})
	if p := st.Pipelines[0]; p.Deployment.Name != "watched" || p.Deployment.Run != 1 || len(p.Stages) != 3 ||
		len(st.Workers) != 1 || st.Workers[0].PID != os.Getpid() {
		t.Errorf("status --json: %+v", st)
	}
	code, stdout, stderr := sluiceCtx(t, "status")
	if code != ExitOK || !strings.Contains(stdout, "pipeline watched  run 1 running  local run") ||
		!regexp.MustCompile(`(?m)^double +transform +map +local `).MatchString(stdout) {
		t.Errorf("status: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := sluiceCtx(t, "status", "nosuch"); code != ExitFailure || !strings.Contains(stderr, "not run by the local run") {
		t.Errorf("status nosuch: exit %d\n%s", code, stderr)
	}

	code, tapped, stderr := sluiceCtx(t, "tap", "watched", "double", "-n", "5")
	if code != ExitOK {
		t.Fatalf("tap: exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(tapped, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("tap -n 5 printed %d lines:\n%s", len(lines), tapped)
	}
	for _, l := range lines {
		var rec struct{ N, Double int }
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Double != 2*rec.N {
			t.Errorf("tap printed %q, want a record of stage double", l)
		}
	}
	code, withHeaders, stderr := sluiceCtx(t, "tap", "watched", "double", "-n", "1", "--headers")
	if code != ExitOK || !strings.Contains(withHeaders, `"subject":"sluice.watched.double"`) || !strings.Contains(withHeaders, `"Nats-Msg-Id"`) {
		t.Errorf("tap --headers: exit %d\n%s%s", code, withHeaders, stderr)
	}
	if code, _, stderr := sluiceCtx(t, "tap", "watched", "gen"); code != ExitFailure || !strings.Contains(stderr, "runs fused with the stage after it") {
		t.Errorf("tap of a stage fused with the next: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := sluiceCtx(t, "tap", "watched", "out"); code != ExitFailure || !strings.Contains(stderr, "no output stream for stage out") {
		t.Errorf("tap of a sink: exit %d\n%s", code, stderr)
	}

	// Without the endpoint, dlq would be refused: the run holds the store.
	if code, stdout, stderr := sluiceCtx(t, "dlq", "list", "watched"); code != ExitOK || stdout != "no dead letters\n" {
		t.Errorf("dlq list: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = sluiceCtx(t, "top", "--once")
	if code != ExitOK || !regexp.MustCompile(`(?m)^PIPELINE +STAGE +WORKERS +IN +OUT`).MatchString(stdout) ||
		!regexp.MustCompile(`(?m)^watched +double +1 +[1-9]`).MatchString(stdout) {
		t.Errorf("top --once: exit %d\n%s%s", code, stdout, stderr)
	}

	// tap --follow prints until the run it reads ends, then ends too.
	followOut := newLockedBuffer()
	followed := make(chan int, 1)
	go func() {
		followed <- MainContext(t.Context(), []string{"tap", "watched", "double", "--follow"}, strings.NewReader(""), followOut, newLockedBuffer())
	}()
	natstest.WaitFor(t, time.Minute, "tap --follow to print records", func() bool {
		return strings.Count(followOut.String(), "\n") >= 3
	})

	code, runErr := stop()
	if code != ExitOK {
		t.Fatalf("run: exit %d\n%s", code, runErr)
	}
	select {
	case code := <-followed:
		if code != ExitOK {
			t.Errorf("tap --follow when the run ended: exit %d, want %d", code, ExitOK)
		}
	case <-time.After(time.Minute):
		t.Fatal("tap --follow did not end with the run")
	}
	// Every record generated reached the sink once, the tapped ones too.
	written := readLines(t, filepath.Join(dir, "out.jsonl"))
	seen := make(map[string]int, len(written))
	for _, l := range written {
		seen[l]++
	}
	for n := range len(written) {
		rec, _ := json.Marshal(map[string]int{"double": 2 * n, "n": n})
		if seen[string(rec)] != 1 {
			t.Fatalf("record %s written %d times (%d lines)", rec, seen[string(rec)], len(written))
		}
	}
	for _, l := range lines {
		if seen[l] != 1 {
			t.Errorf("tapped record %s written %d times", l, seen[l])
		}
	}

	// The run is gone: so is its endpoint, and the commands say so.
	if _, err := os.Stat(filepath.Join(dir, ".sluice", server.EndpointFile)); !os.IsNotExist(err) {
		t.Errorf("endpoint file after the run: %v", err)
	}
	if code, _, stderr := sluiceCtx(t, "status"); code != ExitFailure || !strings.Contains(stderr, "no sluice run is running on the store") {
		t.Errorf("status after the run: exit %d\n%s", code, stderr)
	}
}

// TestTopCluster: top --once and tap on a cluster, from the worker's
// heartbeats and the stages' consumers.
func TestTopCluster(t *testing.T) {
	url := natstest.Server(t).ClientURL()
	dir := inEmptyDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		MainContext(ctx, []string{"worker", "--nats", url, "--id", "w1", "--lease-ttl", "2s", "--log-format", "text"},
			strings.NewReader(""), newLockedBuffer(), newLockedBuffer())
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	file := writeFile(t, dir, "p.yaml", endlessPipeline)
	if code, stdout, stderr := sluiceCtx(t, "deploy", "--nats", url, file); code != ExitOK {
		t.Fatalf("deploy: exit %d\n%s%s", code, stdout, stderr)
	}
	row := regexp.MustCompile(`(?m)^watched +double +1 +[1-9][0-9]* +[1-9][0-9]* `)
	var stdout string
	natstest.WaitFor(t, time.Minute, "top --once to show stage double at work on w1", func() bool {
		var code int
		code, stdout, _ = sluiceCtx(t, "top", "--once", "--nats", url)
		return code == ExitOK && row.MatchString(stdout)
	})
	if code, tapped, stderr := sluiceCtx(t, "tap", "--nats", url, "watched", "double", "-n", "2"); code != ExitOK || strings.Count(tapped, `"double":`) != 2 {
		t.Errorf("tap on the cluster: exit %d\n%s%s", code, tapped, stderr)
	}
}

// TestTopTerminal runs the live top of a local run under tmux: it shows
// the stages and their rates, and q quits it.
func TestTopTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (apt-get install tmux): the live view of top is not tested")
	}
	bin := buildSluice(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "p.yaml", endlessPipeline)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	run := exec.CommandContext(ctx, bin, "run", "--log-format", "text", file)
	run.Dir = dir
	run.Cancel = func() error { return run.Process.Signal(os.Interrupt) }
	runErr := newLockedBuffer()
	run.Stderr = runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = run.Wait()
		if t.Failed() {
			t.Logf("run:\n%s", runErr.String())
		}
	})
	natstest.WaitFor(t, time.Minute, "the run's endpoint", func() bool {
		_, err := server.ReadEndpoint(filepath.Join(dir, ".sluice"))
		return err == nil
	})

	session := "sluice-top-" + filepath.Base(dir)
	tmuxCmd := func(args ...string) (string, error) {
		out, err := exec.Command(tmux, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := tmuxCmd("new-session", "-d", "-s", session, "-x", "150", "-y", "30", "-c", dir, bin+" top --interval 200ms"); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = tmuxCmd("kill-session", "-t", session) })
	// A row of stage double with a rate measured between two samples.
	row := regexp.MustCompile(`(?m)^watched +double +1 +[1-9][0-9]* +[1-9][0-9]* +[0-9.]+ +[1-9][0-9.]* `)
	var screen string
	natstest.WaitFor(t, time.Minute, "top to show stage double with its rates", func() bool {
		screen, _ = tmuxCmd("capture-pane", "-p", "-t", session)
		return row.MatchString(screen) && strings.Contains(screen, "sluice top — local run, process")
	})
	if _, err := tmuxCmd("send-keys", "-t", session, "q"); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 30*time.Second, "top to quit on q", func() bool {
		_, err := tmuxCmd("has-session", "-t", session)
		return err != nil
	})
}

// TestLocalRunUnreachable: a process holds the store but its endpoint
// cannot be reached; the commands refuse, naming the process and why.
func TestLocalRunUnreachable(t *testing.T) {
	dir := inEmptyDir(t)
	store := filepath.Join(dir, ".sluice")
	s, err := server.Start(server.Options{StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	// An endpoint where nothing listens, as a run that lost its listener
	// would leave.
	b, _ := json.Marshal(server.Endpoint{URL: "ws://127.0.0.1:" + strconv.Itoa(natstest.FreePort(t)), Token: "x", PID: os.Getpid()})
	writeFile(t, store, server.EndpointFile, string(b))
	pid := fmt.Sprintf("process %d", os.Getpid())
	for _, args := range [][]string{{"dlq", "list", "demo"}, {"status"}, {"top", "--once"}, {"tap", "demo", "gen"}} {
		code, _, stderr := sluiceCtx(t, args...)
		if code != ExitFailure || !strings.Contains(stderr, pid) || !strings.Contains(stderr, "does not answer") {
			t.Errorf("%s: exit %d, want 1 and a message naming %s and why its endpoint failed:\n%s", strings.Join(args, " "), code, pid, stderr)
		}
	}
}

// TestStatusListen: status --nats at the listener of a `sluice run
// --listen` shows the run, beside what is deployed there (nothing).
func TestStatusListen(t *testing.T) {
	dir := inEmptyDir(t)
	addr := "127.0.0.1:" + strconv.Itoa(natstest.FreePort(t))
	startLocalRun(t, dir, "--listen", addr)
	natstest.WaitFor(t, time.Minute, "status --nats to show the run", func() bool {
		code, stdout, _ := sluiceCtx(t, "status", "--nats", "nats://"+addr)
		return code == ExitOK && strings.Contains(stdout, "pipeline watched  run 1 running  local run")
	})
	if code, stdout, stderr := sluiceCtx(t, "status", "--nats", "nats://"+addr, "nosuch"); code != ExitFailure {
		t.Errorf("status nosuch: exit %d\n%s%s", code, stdout, stderr)
	}
}
