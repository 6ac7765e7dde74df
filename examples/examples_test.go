package examples_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/cli"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// runExample runs `sluice run FILE` from the repository root, as the
// README does, with the output directory and the store in temporary
// directories. It returns the output directory, the store directory and
// what the command wrote to stderr.
func runExample(t *testing.T, file string) (out, store, stderr string) {
	t.Chdir("..")
	out, store = t.TempDir(), t.TempDir()
	t.Setenv("SLUICE_OUT", out)
	var so, se bytes.Buffer
	code := cli.Main([]string{"run", "--store-dir", store, file}, strings.NewReader(""), &so, &se)
	if code != 0 {
		t.Fatalf("sluice run %s: exit %d\nstderr:\n%s", file, code, se.String())
	}
	return out, store, se.String()
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

func encode(t *testing.T, v any) string {
	t.Helper()
	b, err := stages.EncodeJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// summaryRow returns the fields of a stage's row in the run summary.
func summaryRow(t *testing.T, stderr, stage string) []string {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if f := strings.Fields(line); len(f) == 10 && f[0] == stage {
			return f
		}
	}
	t.Fatalf("no summary row for stage %q in:\n%s", stage, stderr)
	return nil
}

// deadLetters opens the store a run left behind and returns the reasons of
// the pipeline's dead letters, sorted.
func deadLetters(t *testing.T, store, p string) []string {
	t.Helper()
	nc := natstest.OpenStore(t, store)
	var reasons []string
	for _, m := range natstest.StreamMessages(t, nc, schema.DLQStreamName(p)) {
		reasons = append(reasons, m.Header.Get(stages.HeaderStage)+": "+m.Header.Get(stages.HeaderError))
	}
	slices.Sort(reasons)
	return reasons
}

func TestETLExample(t *testing.T) {
	out, store, stderr := runExample(t, "examples/etl/pipeline.yaml")

	// The expected output, computed from the CSV independently of sluice.
	f, err := os.Open("examples/etl/orders.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, row := range rows[1:] {
		if len(row) != 5 {
			continue // dead-lettered by the source
		}
		amount, err := strconv.ParseFloat(row[3], 64)
		if err != nil {
			continue // dead-lettered by clean
		}
		id, _ := strconv.Atoi(row[0])
		if amount < 100 {
			continue
		}
		want = append(want, encode(t, map[string]any{
			"id": id, "customer": strings.ToUpper(strings.TrimSpace(row[1])), "country": row[2],
			"amount": amount, "placed_at": row[4],
		}))
	}
	slices.Sort(want)
	if got := readLines(t, filepath.Join(out, "big-orders.jsonl")); !slices.Equal(got, want) {
		t.Fatalf("big-orders.jsonl has %d records, want %d", len(got), len(want))
	}
	if len(want) != 533 {
		t.Fatalf("the README promises 533 big orders, the data has %d", len(want))
	}

	for stage, counts := range map[string][]string{
		// in, out, filtered, errors, dead letters
		"read":  {"3000", "2999", "0", "0", "1"},
		"clean": {"2999", "2997", "0", "0", "2"},
		"big":   {"2997", "533", "2464", "0", "0"},
		"write": {"533", "533", "0", "0", "0"},
	} {
		if got := summaryRow(t, stderr, stage)[3:8]; !slices.Equal(got, counts) {
			t.Errorf("summary of %s: in/out/filtered/errors/dead = %v, want %v", stage, got, counts)
		}
	}

	dead := deadLetters(t, store, "orders-etl")
	if len(dead) != 3 {
		t.Fatalf("dead letters = %q, want 3", dead)
	}
	for i, want := range []string{`clean: invalid operation: float(n/a)`, `clean: invalid operation: float(twelve)`, `read: file examples/etl/orders.csv line 2502`} {
		if !strings.HasPrefix(dead[i], want) {
			t.Errorf("dead letter %d = %q, want prefix %q", i, dead[i], want)
		}
	}
}

func TestFanoutExample(t *testing.T) {
	out, _, stderr := runExample(t, "examples/fanout/pipeline.yaml")

	b, err := os.ReadFile("examples/fanout/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var errors, slow []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev struct {
			ID     int    `json:"id"`
			Path   string `json:"path"`
			Status int    `json:"status"`
			MS     int    `json:"ms"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Status >= 500 {
			errors = append(errors, line)
		}
		if ev.MS >= 500 {
			slow = append(slow, fmt.Sprintf("%d,%s,%s", ev.ID, ev.Path, strconv.FormatFloat(float64(ev.MS)/1000, 'f', -1, 64)))
		}
	}
	slices.Sort(errors)
	if got := readLines(t, filepath.Join(out, "errors.jsonl")); !slices.Equal(got, errors) {
		t.Errorf("errors.jsonl has %d records, want %d", len(got), len(errors))
	}
	got := readLines(t, filepath.Join(out, "slow.csv"))
	slices.Sort(slow)
	if i := slices.Index(got, "id,path,seconds"); i < 0 {
		t.Errorf("slow.csv has no header line")
	} else {
		got = slices.Delete(got, i, i+1)
	}
	if !slices.Equal(got, slow) {
		t.Errorf("slow.csv has %d rows, want %d", len(got), len(slow))
	}
	if len(errors) != 78 || len(slow) != 425 {
		t.Errorf("the README promises 78 errors and 425 slow requests, the data has %d and %d", len(errors), len(slow))
	}
	for stage, in := range map[string]string{"events": "1000", "errors": "1000", "slow": "1000", "report": "425"} {
		if got := summaryRow(t, stderr, stage)[3]; got != in {
			t.Errorf("summary of %s: in = %s, want %s", stage, got, in)
		}
	}
}

// TestResumeExample stops the resume example midway, as a signal would,
// runs it again, and checks the file holds every event once.
func TestResumeExample(t *testing.T) {
	t.Chdir("..")
	out, store := t.TempDir(), t.TempDir()
	t.Setenv("SLUICE_OUT", out)
	t.Setenv("COUNT", "20000")
	file := "examples/resume/pipeline.yaml"
	path := filepath.Join(out, "events.jsonl")

	// The first run is stopped once a few thousand events are written.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan string, 1)
	go func() {
		var so, se bytes.Buffer
		cli.MainContext(ctx, []string{"run", "--store-dir", store, file}, strings.NewReader(""), &so, &se)
		done <- se.String()
	}()
	natstest.WaitFor(t, time.Minute, "events written", func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() > 100_000
	})
	cancel()
	if stderr := <-done; !strings.Contains(stderr, "pipeline resume-demo run 1 interrupted") {
		t.Fatalf("the first run was not interrupted:\n%s", stderr)
	}

	var so, se bytes.Buffer
	if code := cli.Main([]string{"run", "--store-dir", store, file}, strings.NewReader(""), &so, &se); code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, se.String())
	}
	if !strings.Contains(se.String(), "pipeline resume-demo resumed run 1 finished") {
		t.Fatalf("the second run did not resume run 1:\n%s", se.String())
	}
	seen := make(map[int64]int)
	for _, line := range readLines(t, path) {
		var ev struct {
			ID    int64   `json:"id"`
			Euros float64 `json:"euros"`
			Big   bool    `json:"big"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		seen[ev.ID]++
	}
	for id := range int64(20000) {
		if seen[id] != 1 {
			t.Fatalf("event %d written %d times", id, seen[id])
		}
	}
}

// TestClusterExample runs the README of examples/cluster on a 3-node
// cluster in this process: two workers, a deploy, the status, the files.
func TestClusterExample(t *testing.T) {
	t.Chdir("..")
	out := t.TempDir()
	// Deployed pipelines read SLUICE_VAR_ variables only, and write
	// under the workers' data directory.
	t.Setenv("SLUICE_VAR_OUT", out)
	t.Setenv("SLUICE_VAR_COUNT", "5000")
	t.Setenv("SLUICE_DATA_DIR", out)
	t.Setenv("SLUICE_NATS_URL", natstest.URLs(natstest.Cluster(t, 3)))
	t.Setenv("SLUICE_LEASE_TTL", "2s")
	ctx, cancel := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	t.Cleanup(func() { cancel(); workers.Wait() })
	for _, id := range []string{"w1", "w2"} {
		workers.Go(func() {
			var se bytes.Buffer
			if code := cli.MainContext(ctx, []string{"worker", "--id", id}, strings.NewReader(""), io.Discard, &se); code != 0 {
				t.Errorf("worker %s: exit %d\n%s", id, code, se.String())
			}
		})
	}
	sluice := func(args ...string) string {
		t.Helper()
		var so, se bytes.Buffer
		if code := cli.Main(args, strings.NewReader(""), &so, &se); code != 0 {
			t.Fatalf("sluice %s: exit %d\n%s", strings.Join(args, " "), code, se.String())
		}
		return so.String()
	}
	if got := sluice("deploy", "examples/cluster/pipeline.yaml"); got != "deployed pipeline views version 1 (run 1)\n" {
		t.Fatalf("deploy said %q", got)
	}
	natstest.WaitFor(t, 2*time.Minute, "the run to finish on both workers", func() bool {
		var st cluster.StatusReport
		if err := json.Unmarshal([]byte(sluice("status", "--json", "views")), &st); err != nil {
			t.Fatal(err)
		}
		ps := st.Pipelines[0]
		return ps.RunState == "finished" && slices.Equal(ps.Stages[1].Workers, []string{"w1", "w2"})
	})
	ids := make(map[int64]int)
	for _, id := range []string{"w1", "w2"} {
		lines := readLines(t, filepath.Join(out, "views-"+id+".jsonl"))
		if len(lines) == 0 {
			t.Errorf("worker %s wrote nothing", id)
		}
		for _, line := range lines {
			var v struct {
				ID       int64  `json:"id"`
				Page     string `json:"page"`
				Checkout bool   `json:"checkout"`
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil || v.Checkout != (v.Page == "/cart" || v.Page == "/pay") {
				t.Fatalf("bad line %q", line)
			}
			ids[v.ID]++
		}
	}
	for i := range int64(5000) {
		if ids[i] != 1 {
			t.Fatalf("view %d written %d times", i, ids[i])
		}
	}
	if got := sluice("undeploy", "--purge", "views"); got != "undeployed and purged pipeline views\n" {
		t.Errorf("undeploy said %q", got)
	}
}

// TestClickstreamExample runs examples/clickstream as its README does:
// every view is counted once per minute, and each user's burst of five
// views is one session, first and last page by event time.
func TestClickstreamExample(t *testing.T) {
	t.Chdir("..")
	out := t.TempDir()
	t.Setenv("SLUICE_OUT", out)
	var so, se bytes.Buffer
	if code := cli.Main([]string{"run", "--store-dir", t.TempDir(), "examples/clickstream/pipeline.yaml"}, strings.NewReader(""), &so, &se); code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, se.String())
	}
	views, minutes := 0, 0
	for line := range strings.Lines(so.String()) {
		var r struct {
			Key         string
			Views       int
			WindowStart string `json:"window_start"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		views += r.Views
		minutes++
	}
	if views != 2000 || minutes != 800 {
		t.Errorf("per-minute counts: %d views in %d windows, want 2000 in 800", views, minutes)
	}
	sessions := readLines(t, filepath.Join(out, "sessions.jsonl"))
	if len(sessions) != 400 {
		t.Fatalf("%d sessions, want 400", len(sessions))
	}
	for _, line := range sessions {
		var s struct {
			Views     int
			FirstPage string `json:"first_page"`
			LastPage  string `json:"last_page"`
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		if s.Views != 5 || s.FirstPage != "/" || s.LastPage != "/checkout" {
			t.Errorf("session %s: want 5 views from / to /checkout", line)
		}
	}
}
