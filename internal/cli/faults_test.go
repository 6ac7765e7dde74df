package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
)

// faultRecords is the size of the fault tests' job.
const faultRecords = 200_000

// faultPipeline generates faultRecords records through two transforms into
// a file sink; ack_wait is short so that what a killed process held is
// redelivered soon after the restart. As it is, tag and out run fused in
// tag's worker, after double's stream.
const faultPipeline = `name: faults
settings:
  ack_wait: 2s
stages:
  - name: gen
    source: generate
    with: {count: 200000, template: '{"n": seq}'}
  - name: double
    transform: map
    replicas: 2
    with: {expr: 'merge($env, {"double": n * 2})'}
  - name: tag
    transform: map
    with: {expr: 'merge($env, {"tag": n % 7 == 0 ? "seven" : "other"})'}
  - name: out
    sink: file
    with: {path: OUT}
`

// longOutageSettings make the streams forget message IDs after 2s, less
// than the outages of the test that uses them, and keep the buffers small,
// so that the file sink's journal must recognise, on its writing clock,
// the copies of records that the stages republish on resume.
const longOutageSettings = "ack_wait: 1s\n  dedup_window: 2s\n  max_buffer: 5000"

// TestStopAndResume stops `sluice run` as a subprocess at random points,
// with kill -9 or SIGTERM, runs it again to the end, and checks that the
// output holds every record exactly once. In one case the process stays
// down for three times the streams' dedup window each time.
func TestStopAndResume(t *testing.T) {
	bin := buildSluice(t)
	tests := []struct {
		name     string
		sig      syscall.Signal
		stops    int
		down     time.Duration // how long the process stays down after each stop
		settings string        // replace the pipeline's settings
		fused    bool          // one worker for double: every stage runs fused in the source's loop
		streams  bool          // fusion off: a stream between every two stages
	}{
		{name: "kill -9", sig: syscall.SIGKILL, stops: 4},
		{name: "SIGTERM", sig: syscall.SIGTERM, stops: 2},
		{name: "kill -9 and down 3 dedup windows", sig: syscall.SIGKILL, stops: 3, down: 6 * time.Second, settings: longOutageSettings},
		{name: "fused kill -9", sig: syscall.SIGKILL, stops: 4, fused: true},
		{name: "fused SIGTERM", sig: syscall.SIGTERM, stops: 2, fused: true},
		{name: "streams kill -9", sig: syscall.SIGKILL, stops: 3, streams: true},
		{name: "fused kill -9 and down 3 dedup windows", sig: syscall.SIGKILL, stops: 3, down: 6 * time.Second, settings: longOutageSettings, fused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, seed))
			dir := t.TempDir()
			out := filepath.Join(dir, "out.jsonl")
			yaml := strings.ReplaceAll(faultPipeline, "OUT", out)
			if tt.settings != "" {
				yaml = strings.Replace(yaml, "ack_wait: 2s", tt.settings, 1)
			}
			if tt.fused {
				yaml = strings.Replace(yaml, "replicas: 2", "replicas: 1", 1)
			}
			if tt.streams {
				yaml = strings.Replace(yaml, "settings:\n", "settings:\n  fusion: \"off\"\n", 1)
			}
			p := writeFile(t, dir, "faults.yaml", yaml)
			const lineSize = 40 // about, in bytes
			began := false      // a process got as far as starting run 1
			for i := range tt.stops {
				// The first stop comes at a random moment of the start-up;
				// the others once a random share of the output is written.
				var wait func() bool
				if i == 0 {
					deadline := time.Now().Add(time.Duration(rng.IntN(400)) * time.Millisecond)
					wait = func() bool { return time.Now().After(deadline) }
				} else {
					share := (float64(i) + 0.2 + 0.6*rng.Float64()) / float64(tt.stops)
					target := int64(share * faultRecords * lineSize)
					wait = func() bool { return fileSize(out) >= target }
				}
				cmd, stderr := startRun(t, bin, dir, p)
				exited := make(chan error, 1)
				go func() { exited <- cmd.Wait() }()
				var err error
				natstest.WaitFor(t, 2*time.Minute, "the moment to stop", func() bool {
					select {
					case err = <-exited:
						return true
					default:
						return wait()
					}
				})
				if cmd.ProcessState == nil {
					size := fileSize(out)
					if err := cmd.Process.Signal(tt.sig); err != nil {
						t.Fatal(err)
					}
					err = <-exited
					t.Logf("stop %d: %s at %d bytes of output", i+1, tt.sig, size)
				}
				if tt.sig == syscall.SIGTERM && err != nil && stderr.Len() == 0 && strings.Contains(err.Error(), "signal: terminated") {
					// Before main ran and took the signal over: nothing
					// had started.
					t.Logf("stop %d: terminated before sluice started", i+1)
					continue
				}
				if tt.sig == syscall.SIGTERM && err != nil {
					t.Fatalf("stopped by SIGTERM: %v, want exit status 0; stderr:\n%s", err, stderr)
				}
				if began && !strings.Contains(stderr.String(), "run resumed") {
					t.Errorf("stop %d: the run did not resume; stderr:\n%s", i+1, stderr)
				}
				// The log line, not "stopped before the run started",
				// which a process stopped while it set up says.
				began = began || strings.Contains(stderr.String(), `"msg":"run started"`)
				// The outage itself: the streams forget what they stored
				// before it.
				time.Sleep(tt.down)
			}
			cmd, stderr := startRun(t, bin, dir, p)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("final run: %v; stderr:\n%s", err, stderr)
			}
			if !strings.Contains(stderr.String(), "pipeline faults resumed run 1 finished") {
				t.Errorf("final run did not resume run 1 to its end; stderr:\n%s", stderr)
			}
			checkEachOnce(t, out, faultRecords)
			checkRunCounts(t, stderr.String(), faultRecords)
		})
	}
}

// checkRunCounts checks the summary table of a run of faultPipeline that
// ended, resumed or not: its counts are those of the whole run. The source
// read and published every record once; every stage took in at least as
// many (copies a restart published again after the streams forgot them
// are counted where they arrive), and accounted for each.
func checkRunCounts(t *testing.T, stderr string, records uint64) {
	t.Helper()
	rows := 0
	for line := range strings.Lines(stderr) {
		f := strings.Fields(line)
		if len(f) != 10 || !slices.Contains([]string{"gen", "double", "tag", "out"}, f[0]) {
			continue
		}
		rows++
		var n [6]uint64 // in, out, filtered, errors, dead letters, dropped
		for i := range n {
			v, err := strconv.ParseUint(f[3+i], 10, 64)
			if err != nil {
				t.Fatalf("summary row %q: %v", line, err)
			}
			n[i] = v
		}
		if n[0] != n[1]+n[2]+n[3]+n[4]+n[5] {
			t.Errorf("stage %s: in %d != out + filtered + errors + dead letters + dropped (%d)", f[0], n[0], n[1]+n[2]+n[3]+n[4]+n[5])
		}
		if f[0] == "gen" && (n[0] != records || n[1] != records) {
			t.Errorf("source: in %d, out %d, want %d each over the whole run", n[0], n[1], records)
		}
		if n[0] < records {
			t.Errorf("stage %s: in %d, want at least %d", f[0], n[0], records)
		}
	}
	if rows != 4 {
		t.Errorf("summary has %d stage rows, want 4:\n%s", rows, stderr)
	}
}

// startRun starts `sluice run` on pipeline p in dir with a deadline that
// kills a hung process.
func startRun(t *testing.T, bin, dir, p string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, "run", "--log-level", "info", p)
	cmd.Dir = dir
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stderr
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// checkEachOnce checks that the output of faultPipeline, or of a pipeline
// of the same stages, holds every one of records records once, transformed
// by both stages.
func checkEachOnce(t *testing.T, path string, records int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make([]int, records)
	lines, bad := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines++
		var rec struct {
			N, Double *int
			Tag       string
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.N == nil || rec.Double == nil ||
			*rec.N < 0 || *rec.N >= records || *rec.Double != 2**rec.N || (rec.Tag == "seven") != (*rec.N%7 == 0) {
			if bad++; bad <= 3 {
				t.Errorf("line %d: %q", lines, sc.Text())
			}
			continue
		}
		seen[*rec.N]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	missing, twice := 0, 0
	for n, c := range seen {
		switch {
		case c == 0:
			if missing++; missing <= 3 {
				t.Errorf("record %d missing", n)
			}
		case c > 1:
			if twice++; twice <= 3 {
				t.Errorf("record %d written %d times", n, c)
			}
		}
	}
	t.Logf("output: %d lines, %d records of %d, %d missing, %d more than once, %d malformed", lines, records-missing, records, missing, twice, bad)
	if missing > 0 || twice > 0 || bad > 0 {
		t.FailNow()
	}
}
