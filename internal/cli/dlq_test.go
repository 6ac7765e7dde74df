package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
)

const dlqPipeline = `name: dlqdemo
stages:
  - name: read
    source: file
    with: {path: in.jsonl}
  - name: tag
    transform: map
    with: {expr: 'merge($env, {"n2": EXPR})'}
  - name: out
    sink: file
    with: {path: out.jsonl}
`

// TestDLQCommands: records a stage fails on are listed with their
// reasons; once the stage is fixed, a replay and a run of the stages
// without the source deliver them.
func TestDLQCommands(t *testing.T) {
	dir := inEmptyDir(t)
	writeFile(t, dir, "in.jsonl", `{"n": "1"}
{"n": "two"}
{"n": "3"}
{"n": "four"}
`)
	broken := writeFile(t, dir, "broken.yaml", strings.Replace(dlqPipeline, "EXPR", "int(n) * 2", 1))
	if code, _, stderr := sluice(t, "run", broken); code != ExitOK {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}

	code, stdout, stderr := sluice(t, "dlq", "list", "dlqdemo")
	if code != ExitOK {
		t.Fatalf("dlq list: exit %d\n%s", code, stderr)
	}
	for _, row := range []string{
		`(?m)^1 +\S+ +1 +tag +1 +invalid operation: int\(two\) .*\(in expression .* +{"n": "two"}$`,
		`(?m)^2 +\S+ +1 +tag +1 +invalid operation: int\(four\) .*\(in expression .* +{"n": "four"}$`,
	} {
		if !regexp.MustCompile(row).MatchString(stdout) {
			t.Errorf("dlq list has no row matching %s:\n%s", row, stdout)
		}
	}
	if _, stdout, _ := sluice(t, "dlq", "list", "--limit", "1", "dlqdemo"); strings.Count(stdout, "\n") != 2 {
		t.Errorf("--limit 1 printed:\n%s", stdout)
	}
	if _, stdout, _ := sluice(t, "dlq", "list", "--stage", "read", "dlqdemo"); stdout != "no dead letters\n" {
		t.Errorf("--stage read printed:\n%s", stdout)
	}
	if code, _, stderr := sluice(t, "dlq", "list", "nosuch"); code != ExitFailure || !strings.Contains(stderr, "has not run") {
		t.Errorf("an unknown pipeline: exit %d\n%s", code, stderr)
	}

	code, _, stderr = sluice(t, "dlq", "replay", "dlqdemo")
	if code != ExitOK || !strings.Contains(stderr, "replayed 2 dead letters, 0 left in place") {
		t.Fatalf("dlq replay: exit %d\n%s", code, stderr)
	}
	if _, stdout, _ := sluice(t, "dlq", "list", "dlqdemo"); stdout != "no dead letters\n" {
		t.Errorf("after the replay:\n%s", stdout)
	}

	fixed := writeFile(t, dir, "fixed.yaml", strings.Replace(dlqPipeline, "EXPR", `n matches "^[0-9]+$" ? int(n) * 2 : len(n)`, 1))
	code, _, stderr = sluice(t, "run", "--stages", "tag,out", fixed)
	if code != ExitOK {
		t.Fatalf("run the fixed stages: exit %d\n%s", code, stderr)
	}
	// The process joined run 1: its file sink keeps what the run wrote and
	// adds the replays.
	got := readLines(t, dir+"/out.jsonl")
	want := []string{`{"n":"1","n2":2}`, `{"n":"3","n2":6}`, `{"n":"four","n2":4}`, `{"n":"two","n2":3}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("out.jsonl = %q, want %q", got, want)
	}

	if code, _, stderr := sluice(t, "run", "--stages", "nope", fixed); code != ExitUsage || !strings.Contains(stderr, `no stage "nope"`) {
		t.Errorf("an unknown stage: exit %d\n%s", code, stderr)
	}
}

// readLines returns the lines of a file, sorted.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	slices.Sort(lines)
	return lines
}

// replayPipeline generates RECORDS records and writes {"n": i, "double":
// 2i} for each; with EXPR "1 / 0 < 0" (broken), the map fails on the
// records whose seq is 3 modulo 7, and on none with "false" (fixed). A
// second map, check, fails likewise where CHECK holds.
const replayPipeline = `name: replaydemo
stages:
  - name: gen
    source: generate
    with: {count: 200}
  - name: tag
    transform: map
    with: {expr: '{"n": seq, "double": seq % 7 == 3 && EXPR ? int("x" + string(seq)) : seq * 2}'}
  - name: check
    transform: map
    with: {expr: 'n % 5 == 1 && CHECK ? int("y" + string(n)) : $env'}
  - name: out
    sink: file
    with: {path: out.jsonl}
`

// replayFiles writes the pipeline broken in tag alone, broken in tag and
// check, and fixed.
func replayFiles(t *testing.T, dir string) (broken, brokenTwice, fixed string) {
	t.Helper()
	write := func(name, expr, check string) string {
		return writeFile(t, dir, name, strings.NewReplacer("EXPR", expr, "CHECK", check).Replace(replayPipeline))
	}
	return write("broken.yaml", "true", "false"), write("broken2.yaml", "true", "true"), write("fixed.yaml", "false", "false")
}

const (
	replayRecords = 200
	tagFails      = 29 // seq % 7 == 3 for seq < 200
	checkFails    = 35 // seq % 5 == 1 and not seq % 7 == 3
)

// runOK runs the pipeline file and returns its stderr.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	code, _, stderr := sluice(t, append([]string{"run"}, args...)...)
	if code != ExitOK {
		t.Fatalf("run %v: exit %d\n%s", args, code, stderr)
	}
	return stderr
}

// countRuns counts the rows of dlq list by run.
func countRuns(t *testing.T, args ...string) map[string]int {
	t.Helper()
	code, stdout, stderr := sluice(t, append([]string{"dlq", "list", "--limit", "0", "replaydemo"}, args...)...)
	if code != ExitOK {
		t.Fatalf("dlq list: exit %d\n%s", code, stderr)
	}
	runs := make(map[string]int)
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n")[1:] {
		runs[strings.Fields(line)[2]]++
	}
	return runs
}

// TestDLQReplayThenRun is the documented path: a stage dead-letters some
// records; the user fixes it, replays, and runs the pipeline again. The
// run that dead-lettered them, finished, is resumed for the replays alone,
// so the output holds every record exactly once; the run after that is a
// new run.
func TestDLQReplayThenRun(t *testing.T) {
	dir := inEmptyDir(t)
	broken, _, fixed := replayFiles(t, dir)
	stderr := runOK(t, broken)
	if !regexp.MustCompile(`(?m)^ +tag +transform +map +200 +171 +0 +0 +29 `).MatchString(stderr) {
		t.Fatalf("the broken run did not dead-letter 29 records:\n%s", stderr)
	}
	if runs := countRuns(t); runs["1"] != tagFails || len(runs) != 1 {
		t.Fatalf("dlq list shows runs %v, want %d dead letters of run 1", runs, tagFails)
	}

	code, _, stderr := sluice(t, "dlq", "replay", "replaydemo")
	if code != ExitOK || !strings.Contains(stderr, "replayed 29 dead letters, 0 left in place") {
		t.Fatalf("dlq replay: exit %d\n%s", code, stderr)
	}
	stderr = runOK(t, fixed)
	for _, want := range []string{
		`(?m)^pipeline replaydemo replay of run 1 finished in `,
		`(?m)^ +gen +source +generate +0 +0 `,
		`(?m)^ +tag +transform +map +29 +29 +0 +0 +0 `,
		`(?m)^ +out +sink +file +29 +29 `,
	} {
		if !regexp.MustCompile(want).MatchString(stderr) {
			t.Errorf("the run after the replay printed no line matching %s:\n%s", want, stderr)
		}
	}
	natstest.CheckExactlyOnce(t, filepath.Join(dir, "out.jsonl"), replayRecords)
	if _, stdout, _ := sluice(t, "dlq", "list", "replaydemo"); stdout != "no dead letters\n" {
		t.Errorf("after the replay:\n%s", stdout)
	}

	// Nothing waits any more: the next run is a new one.
	if stderr := runOK(t, fixed); !strings.Contains(stderr, "pipeline replaydemo run 2 finished") {
		t.Errorf("the next run:\n%s", stderr)
	}
	natstest.CheckExactlyOnce(t, filepath.Join(dir, "out.jsonl"), replayRecords)
}

// TestDLQReplayOlderRun: once a new run has begun, the dead letters of an
// earlier run are not replayed (its records were read again), and the
// message says how to remove them; the latest run's are.
func TestDLQReplayOlderRun(t *testing.T) {
	dir := inEmptyDir(t)
	broken, _, fixed := replayFiles(t, dir)
	runOK(t, broken)
	runOK(t, broken)
	if runs := countRuns(t); runs["1"] != tagFails || runs["2"] != tagFails {
		t.Fatalf("dlq list shows runs %v, want %d of runs 1 and 2", runs, tagFails)
	}

	code, _, stderr := sluice(t, "dlq", "replay", "replaydemo")
	if code != ExitFailure || !strings.Contains(stderr, "replayed 29 dead letters, 29 left in place") ||
		!strings.Contains(stderr, "belongs to run 1, which is over: run 2 has begun since") ||
		!strings.Contains(stderr, `"sluice dlq purge replaydemo --run N"`) {
		t.Fatalf("dlq replay: exit %d\n%s", code, stderr)
	}
	if runs := countRuns(t); runs["1"] != tagFails || len(runs) != 1 {
		t.Fatalf("after the replay, dlq list shows runs %v, want run 1's left", runs)
	}
	if code, stdout, stderr := sluice(t, "dlq", "purge", "--run", "1", "replaydemo"); code != ExitOK || stdout != "purged 29 dead letters\n" {
		t.Fatalf("dlq purge --run 1: exit %d\n%s%s", code, stdout, stderr)
	}
	if stderr := runOK(t, fixed); !strings.Contains(stderr, "pipeline replaydemo replay of run 2 finished") {
		t.Errorf("the run after the replay:\n%s", stderr)
	}
	natstest.CheckExactlyOnce(t, filepath.Join(dir, "out.jsonl"), replayRecords)
}

// TestDLQPurge deletes dead letters by stage, by run, both and all, in
// turn, on two runs that dead-lettered records in two stages.
func TestDLQPurge(t *testing.T) {
	dir := inEmptyDir(t)
	_, brokenTwice, _ := replayFiles(t, dir)
	runOK(t, brokenTwice)
	runOK(t, brokenTwice)
	if runs := countRuns(t, "--stage", "check"); runs["1"] != checkFails || runs["2"] != checkFails {
		t.Fatalf("dlq list --stage check shows runs %v, want %d of runs 1 and 2", runs, checkFails)
	}
	for _, tt := range []struct {
		args   []string
		purged int
		left   map[string]int // dead letters left by run
	}{
		{[]string{"--stage", "check", "--run", "1"}, checkFails, map[string]int{"1": tagFails, "2": tagFails + checkFails}},
		{[]string{"--stage", "tag"}, 2 * tagFails, map[string]int{"2": checkFails}},
		{[]string{"--run", "1"}, 0, map[string]int{"2": checkFails}},
		{nil, checkFails, map[string]int{}},
		{nil, 0, map[string]int{}},
	} {
		args := append([]string{"dlq", "purge", "replaydemo"}, tt.args...)
		code, stdout, stderr := sluice(t, args...)
		if want := fmt.Sprintf("purged %d dead letters\n", tt.purged); code != ExitOK || stdout != want {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, stdout, stderr, want)
		}
		if left := countRuns(t); !maps.Equal(left, tt.left) {
			t.Fatalf("after %v: dead letters by run %v, want %v", args, left, tt.left)
		}
	}
}

func TestDLQPurgeErrors(t *testing.T) {
	inEmptyDir(t)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dlq", "purge"}, ExitUsage, "want one pipeline name (got 0 arguments)"},
		{[]string{"dlq", "purge", "--run", "x", "p"}, ExitUsage, `invalid argument "x" for "--run"`},
		{[]string{"dlq", "purge", "nosuch"}, ExitFailure, "pipeline has not run on this server"},
	} {
		code, _, stderr := sluice(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d\n%s\nwant exit %d and %q", tt.args, code, stderr, tt.code, tt.want)
		}
	}
}

// TestStoreInUse: while `sluice run` holds the store, dlq works through
// its endpoint, and a second run, which would start a second embedded
// server on the store, refuses, naming the process.
func TestStoreInUse(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "slow.yaml", `name: slow
stages:
  - name: gen
    source: generate
    with: {rate: 10}
  - name: out
    sink: discard
`)
	other := writeFile(t, dir, "other.yaml", `name: other
stages:
  - name: gen
    source: generate
    with: {count: 1}
  - name: out
    sink: discard
`)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, bin, "run", "--log-level", "info", p)
	run.Dir = dir
	stderr := newLockedBuffer()
	run.Stderr = stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = run.Process.Signal(syscall.SIGTERM)
		_ = run.Wait()
	})
	natstest.WaitFor(t, time.Minute, "the run to start", func() bool {
		return strings.Contains(stderr.String(), `"msg":"run started"`)
	})

	list := exec.CommandContext(ctx, bin, "dlq", "list", "slow")
	list.Dir = dir
	if out, err := list.CombinedOutput(); err != nil || !strings.Contains(string(out), "no dead letters") {
		t.Fatalf("dlq list through the running process: %v, want exit status 0 and no dead letters; output:\n%s", err, out)
	}

	second := exec.CommandContext(ctx, bin, "run", other)
	second.Dir = dir
	out, err := second.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("a second run on the store: %v, want exit status 1; output:\n%s", err, out)
	}
	for _, want := range []string{"in use", fmt.Sprintf("process %d", run.Process.Pid), "sluice run"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the second run says %q, want it to contain %q", out, want)
		}
	}
}
