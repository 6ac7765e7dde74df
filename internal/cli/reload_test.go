package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/server"
)

// hotPipeline generates records at a rate, or a count of them, doubles
// them and writes them to out.jsonl. The sink asks for a stream before
// it, so that a reload stops and resumes both a fused source and a
// consumer. ack_wait is short: what a stopped consumer had pulled and not
// yet handed to a worker comes back after it, as after SIGTERM.
const hotPipeline = `name: hot
settings:
  ack_wait: 2s
stages:
  - name: gen
    source: generate
    with: {RATE, template: '{"n": seq}'}
  - name: double
    transform: map
    with: {expr: '{"n": n, "double": n * 2}'}
  - name: out
    sink: file
    buffer: durable
    with: {path: out.jsonl}
`

// hotRecord is a line of hotPipeline's output; V is set by the versions
// the tests reload.
type hotRecord struct {
	N, Double *int
	V         int
}

// readHot returns the records of hotPipeline's output in dir, in file
// order, and fails the test on a malformed line.
func readHot(t *testing.T, dir string) []hotRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lines = lines[:len(lines)-1] // after the last newline: nothing, or a line being written
	recs := make([]hotRecord, 0, len(lines))
	for _, line := range lines {
		var r hotRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.N == nil || r.Double == nil || *r.Double != 2**r.N {
			t.Fatalf("malformed output line %q", line)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkHotOnce checks that recs hold records 0 to records-1 once each
// (none lost, none repeated), or with records 0 that none is repeated;
// and that once a record carries V == v, every later one (by n) does.
func checkHotOnce(t *testing.T, recs []hotRecord, records, v int) bool {
	t.Helper()
	seen := make(map[int]int, len(recs))
	for _, r := range recs {
		if seen[*r.N]++; seen[*r.N] == 2 {
			t.Errorf("record %d written more than once", *r.N)
		}
	}
	missing := 0
	for n := range records {
		if seen[n] == 0 {
			if missing++; missing <= 3 {
				t.Errorf("record %d missing", n)
			}
		}
	}
	if records > 0 && len(seen) != records {
		t.Errorf("%d records, want %d", len(seen), records)
	}
	first := -1 // the first n with the new version's field
	for _, r := range recs {
		if r.V == v && (first < 0 || *r.N < first) {
			first = *r.N
		}
	}
	for _, r := range recs {
		if first >= 0 && *r.N > first && r.V != v {
			t.Errorf("record %d has v %d, want %d as every record after %d", *r.N, r.V, v, first)
		}
	}
	t.Logf("%d records, version %d from record %d", len(recs), v, first)
	return !t.Failed()
}

// startWatch writes hotPipeline with gen's rate (or count) to p.yaml in
// a new working directory and runs `sluice run --watch` on it, with
// flags, in this process, until stop, which stops it as SIGTERM does and
// returns its exit code.
func startWatch(t *testing.T, rate string, flags ...string) (dir, file string, stderr *lockedBuffer, stop func() int) {
	t.Helper()
	dir = inEmptyDir(t)
	file = writeFile(t, dir, "p.yaml", strings.Replace(hotPipeline, "RATE", rate, 1))
	args := append([]string{"run", "--watch", "--log-format", "text", "--log-level", "info", "--quiet"}, flags...)
	stderr, stop = background(t, append(args, file)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stderr of run --watch:\n%s", stderr)
		}
	})
	return dir, file, stderr, stop
}

// edit rewrites file with old replaced by new, as an editor that saves
// to a temporary file and renames it over the old one.
func edit(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

// lineOf returns the number of the first line of file that holds s.
func lineOf(t *testing.T, file, s string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) {
			return i + 1
		}
	}
	t.Fatalf("%s does not hold %q", file, s)
	return 0
}

// waitRecords waits until the output holds more than n records.
func waitRecords(t *testing.T, dir string, n int) {
	t.Helper()
	natstest.WaitFor(t, time.Minute, "more than "+strconv.Itoa(n)+" records in the output", func() bool {
		return len(readHot(t, dir)) > n
	})
}

const (
	oldExpr = `'{"n": n, "double": n * 2}'`
	newExpr = `'{"n": n, "double": n * 2, "v": 2}'`
)

// reloadRecords is the size of TestRunWatchReload's job: at 200 records
// a second, it runs long enough to be reloaded and stopped.
const reloadRecords = 1000

// TestRunWatchReload: a change of a map expression while the pipeline
// runs is applied without losing or repeating a record; the later records
// carry the new field. The process stopped by SIGTERM after the reload,
// "sluice run" resumes the run to its end, with the new version.
func TestRunWatchReload(t *testing.T) {
	dir, file, stderr, stop := startWatch(t, "rate: 200, count: "+strconv.Itoa(reloadRecords))
	waitRecords(t, dir, 50)
	edit(t, file, oldExpr, newExpr)
	natstest.WaitFor(t, time.Minute, "records of version 2", func() bool {
		recs := readHot(t, dir)
		return len(recs) > 0 && recs[len(recs)-1].V == 2
	})
	n := len(readHot(t, dir))
	waitRecords(t, dir, n+50)
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	log := stderr.String()
	for _, want := range []string{`msg="pipeline hot reloaded (version 2)"`, `msg="run resumed" pipeline=hot run=1`} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
	if strings.Count(log, "reloaded") != 1 {
		t.Errorf("want one reload; stderr:\n%s", log)
	}
	if strings.Contains(log, "pipeline hot finished") {
		t.Fatalf("the run finished before it was stopped: make reloadRecords larger; stderr:\n%s", log)
	}
	if recs := readHot(t, dir); !checkHotOnce(t, recs, 0, 2) {
		t.Fatalf("stderr:\n%s", log)
	}
	code, _, errOut := sluiceCtx(t, "run", "--log-format", "text", "--quiet", file)
	if code != ExitOK || !strings.Contains(errOut, "pipeline hot resumed run 1 finished") {
		t.Fatalf("run after the stop: exit %d; stderr:\n%s", code, errOut)
	}
	if recs := readHot(t, dir); !checkHotOnce(t, recs, reloadRecords, 2) {
		t.Fatalf("stderr of the watching run:\n%s\nof the run after:\n%s", log, errOut)
	}
}

// TestRunWatchRefused: an edit that does not validate, or that renames
// the pipeline, is reported and the version running keeps running.
func TestRunWatchRefused(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		// want matches the report on stderr; line is the line the edit
		// is on.
		want func(file string, line int) *regexp.Regexp
	}{
		{
			name: "invalid",
			old:  "transform: map", new: "transform: nosuch",
			// The stage type, in `sluice validate`'s form.
			want: func(file string, line int) *regexp.Regexp {
				return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(file) + `:` + strconv.Itoa(line) + `:\d+: .*nosuch`)
			},
		},
		{
			name: "invalid expression",
			old:  oldExpr, new: `'{"n": n +}'`,
			want: func(file string, line int) *regexp.Regexp {
				return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(file) + `:` + strconv.Itoa(line) + `:\d+: `)
			},
		},
		{
			// Valid, but its sink cannot open its file: the old version
			// takes the run on again.
			name: "cannot start",
			old:  "with: {path: out.jsonl}", new: "with: {path: p.yaml/out.jsonl}",
			want: func(string, int) *regexp.Regexp {
				return regexp.MustCompile(`pipeline hot version 2 cannot start; version 1 runs again`)
			},
		},
		{
			name: "rename",
			old:  "name: hot", new: "name: cold",
			want: func(string, int) *regexp.Regexp {
				return regexp.MustCompile(`renames pipeline hot to cold: refused.*version 1 of hot stays`)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, file, stderr, stop := startWatch(t, "rate: 200")
			waitRecords(t, dir, 20)
			edit(t, file, tt.old, tt.new)
			want := tt.want(file, lineOf(t, file, tt.new))
			natstest.WaitFor(t, time.Minute, "stderr to match "+want.String(), func() bool { return want.MatchString(stderr.String()) })
			// The old version runs on.
			waitRecords(t, dir, len(readHot(t, dir))+50)
			if code := stop(); code != ExitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			if strings.Contains(stderr.String(), "reloaded") {
				t.Errorf("reloaded:\n%s", stderr)
			}
			if !checkHotOnce(t, readHot(t, dir), 0, 2) {
				t.Fatalf("stderr:\n%s", stderr)
			}
			for _, r := range readHot(t, dir) {
				if r.V != 0 {
					t.Fatalf("record %d has v %d from a version refused", *r.N, r.V)
				}
			}
		})
	}
}

// TestRunWatchFinished: with --watch, a run that finishes leaves the
// process watching; a change then begins a new run of the new version,
// whose sources read from the beginning.
func TestRunWatchFinished(t *testing.T) {
	dir, file, stderr, stop := startWatch(t, "count: 20")
	waitLog(t, stderr, "pipeline hot finished; watching "+file)
	if recs := readHot(t, dir); len(recs) != 20 {
		t.Fatalf("%d records after the first run, want 20", len(recs))
	}
	edit(t, file, oldExpr, newExpr)
	waitLog(t, stderr, `msg="pipeline hot reloaded (version 2)"`)
	natstest.WaitFor(t, time.Minute, "the second run to finish", func() bool {
		return strings.Count(stderr.String(), "pipeline hot finished; watching") == 2
	})
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	log := stderr.String()
	if !strings.Contains(log, `msg="run started" pipeline=hot run=2`) {
		t.Errorf("no run 2 started:\n%s", log)
	}
	// The new run's file sink empties the file first, as it does by
	// default: the second run's records alone.
	recs := readHot(t, dir)
	if len(recs) != 20 {
		t.Fatalf("%d records after the second run, want 20", len(recs))
	}
	for i, r := range recs {
		if *r.N != i || r.V != 2 {
			t.Errorf("line %d: n %d v %d, want n %d v 2", i+1, *r.N, r.V, i)
		}
	}
}

// copyStage is a second sink of hotPipeline's double.
const copyStage = `  - name: copy
    sink: file
    from: double
    with: {path: copy.jsonl}
`

// TestRunWatchStages: a reload that adds a stage logs it and runs it; one
// that removes it logs that and deletes the durable consumer it read
// with, which would otherwise keep its stream's messages.
func TestRunWatchStages(t *testing.T) {
	dir, file, stderr, stop := startWatch(t, "rate: 200")
	waitRecords(t, dir, 20)
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edit(t, file, "    with: {path: out.jsonl}\n", "    with: {path: out.jsonl}\n"+copyStage)
	waitLog(t, stderr, `msg="pipeline hot reloaded (version 2)" file=`+file+` added=copy removed=""`)
	natstest.WaitFor(t, time.Minute, "records in copy.jsonl", func() bool { return fileSize(filepath.Join(dir, "copy.jsonl")) > 0 })
	// status shows the version that runs.
	var st cluster.StatusReport
	natstest.WaitFor(t, time.Minute, "status --json to show stage copy", func() bool {
		code, stdout, _ := sluiceCtx(t, "status", "--json")
		return code == ExitOK && json.Unmarshal([]byte(stdout), &st) == nil && len(st.Pipelines) == 1 && len(st.Pipelines[0].Stages) == 4
	})
	if s := st.Pipelines[0].Stages[3]; s.Name != "copy" {
		t.Errorf("status: stage %+v, want copy", s)
	}

	e, err := server.ReadEndpoint(filepath.Join(dir, ".sluice"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.URL, nats.Token(e.Token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() []string {
		str, err := js.Stream(t.Context(), schema.StreamName("hot", "double"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		lister := str.ConsumerNames(t.Context())
		for n := range lister.Name() {
			names = append(names, n)
		}
		if err := lister.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		return names
	}
	if got := consumers(); !slices.Equal(got, []string{"copy", "out"}) {
		t.Fatalf("consumers on double's stream: %v, want copy and out", got)
	}

	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	waitLog(t, stderr, `msg="pipeline hot reloaded (version 3)" file=`+file+` added="" removed=copy`)
	natstest.WaitFor(t, time.Minute, "copy's consumer deleted", func() bool { return slices.Equal(consumers(), []string{"out"}) })
	n := len(readHot(t, dir))
	waitRecords(t, dir, n+20)
	nc.Close()
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	checkHotOnce(t, readHot(t, dir), 0, 2)
}

// TestRunWatchFresh: --fresh is for the run the command begins with: a
// reload resumes it rather than discarding it.
func TestRunWatchFresh(t *testing.T) {
	srv := natstest.Server(t)
	dir, file, stderr, stop := startWatch(t, "rate: 200", "--nats", srv.ClientURL(), "--fresh")
	waitRecords(t, dir, 20)
	edit(t, file, oldExpr, newExpr)
	natstest.WaitFor(t, time.Minute, "records of version 2", func() bool {
		recs := readHot(t, dir)
		return len(recs) > 0 && recs[len(recs)-1].V == 2
	})
	if code := stop(); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if log := stderr.String(); !strings.Contains(log, `msg="run resumed" pipeline=hot run=1`) || strings.Contains(log, "run=2") {
		t.Errorf("the reload did not resume run 1:\n%s", log)
	}
	recs := readHot(t, dir)
	if !checkHotOnce(t, recs, 0, 2) || *recs[0].N != 0 || recs[0].V == 2 {
		t.Errorf("output begins with %+v", recs[0])
	}
}
