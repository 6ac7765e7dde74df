package cli

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
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
