package progress

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// fakeJob is a Job whose counts the test sets.
type fakeJob struct {
	mu          sync.Mutex
	name        string
	stages      []runner.StageSummary
	pending     map[string]uint64 // stages with inputs
	slow        string            // a stage whose backlog request does not answer
	done, total int64             // the source's bytes; total 0: it does not tell
}

func (j *fakeJob) Pipeline() string { return j.name }
func (j *fakeJob) ID() uint64       { return 7 }
func (j *fakeJob) Stages() []string {
	var names []string
	for _, s := range j.stages {
		names = append(names, s.Name)
	}
	return names
}

func (j *fakeJob) Stage(name string) runner.StageSummary {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, s := range j.stages {
		if s.Name == name {
			return s
		}
	}
	return runner.StageSummary{Name: name}
}

func (j *fakeJob) Backlog(ctx context.Context, name string) (runner.Backlog, bool, error) {
	if name == j.slow {
		<-ctx.Done()
		return runner.Backlog{}, false, ctx.Err()
	}
	p, ok := j.pending[name]
	return runner.Backlog{Pending: p, AckPending: 1}, ok, nil
}

func (j *fakeJob) SourceProgress(name string) (int64, int64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if name != j.stages[0].Name || j.total == 0 {
		return 0, 0, false
	}
	return j.done, j.total, true
}

// set sets the counts of stage i and the source's bytes read.
func (j *fakeJob) set(i int, in, out uint64, done int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.stages[i].In, j.stages[i].Out = in, out
	j.done = done
}

func newFakeJob(name string) *fakeJob {
	return &fakeJob{
		name: name,
		stages: []runner.StageSummary{
			{Name: "read", Role: stages.RoleSource},
			{Name: "parse", Role: stages.RoleTransform},
			{Name: "write", Role: stages.RoleSink},
		},
		pending: map[string]uint64{"parse": 1200, "write": 40},
		total:   1000,
	}
}

// clock is a clock the test moves.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time      { return c.now }
func (c *clock) add(d time.Duration) { c.now = c.now.Add(d) }
func newClock() *clock               { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func lines(s string) []string        { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }
func eraseOf(n int) string           { return "\r\x1b[" + strconv.Itoa(n) + "A\x1b[J" }
func newTerminal(c *clock) (*Display, *bytes.Buffer) {
	var out bytes.Buffer
	return New(Options{Terminal: true, Out: &out, Now: c.Now}), &out
}

func TestLines(t *testing.T) {
	frames := []Frame{{
		Pipeline: "orders", Run: 3, Elapsed: 75 * time.Second,
		Rows: []Row{
			{Stage: "read", Role: stages.RoleSource, In: 1234567, Out: 1234560, Rate: 9876.4, Done: 250, Total: 1000, HasBytes: true, ETA: 3725 * time.Second, HasETA: true},
			{Stage: "enrich", Role: stages.RoleTransform, In: 1200, Out: 1100, Rate: -1, Pending: 34567, HasPending: true},
			{Stage: "out", Role: stages.RoleSink, Rate: 0, Held: 12 * time.Second},
		},
	}, {
		Pipeline: "logs", Run: 1, Elapsed: time.Second,
		Rows: []Row{
			{Stage: "tail", Role: stages.RoleSource, In: 5, Out: 5, Rate: 2.5, Done: 3 << 20, Total: -1, HasBytes: true},
			{Stage: "gen", Role: stages.RoleSource, In: 9, Out: 9, Rate: 1},
			{Stage: "done", Role: stages.RoleSource, Done: 10, Total: 10, HasBytes: true, HasETA: true},
		},
	}}
	want := []string{
		"orders  run 3  1:15",
		"  read    in 1,234,567  out 1,234,560     9,876/s  [######------------------]  25.0%  ETA 1:02:05",
		"  enrich  in     1,200  out     1,100         -/s  pending 34,567",
		"  out     in         0  out         0         0/s  pending ?  HELD 0:12",
		"logs  run 1  0:01",
		"  tail  in         5  out         5         3/s  read 3.0 MiB",
		"  gen   in         9  out         9         1/s",
		"  done  in         0  out         0         0/s  [########################] 100.0%",
	}
	got := Lines(frames, 0)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range Lines(frames, 40) {
		if len(l) > 39 {
			t.Errorf("line of %d columns on a terminal of 40: %q", len(l), l)
		}
	}
}

func TestDisplayTerminal(t *testing.T) {
	c := newClock()
	d, out := newTerminal(c)
	j := newFakeJob("orders")
	d.Add(j)
	d.tick()
	first := out.String()
	if got := lines(first); len(got) != 4 || got[0] != "orders  run 7  0:00" ||
		!strings.Contains(got[1], "[------------------------]   0.0%  ETA ?") ||
		!strings.Contains(got[2], "-/s  pending 1,201") || !strings.Contains(got[3], "pending 41") {
		t.Fatalf("first frame:\n%s", first)
	}

	// Half a second later: rates over the interval, the bar and an ETA
	// at the rate so far.
	j.set(0, 500, 500, 250)
	j.set(1, 100, 90, 250)
	c.add(500 * time.Millisecond)
	out.Reset()
	d.tick()
	got := out.String()
	if !strings.HasPrefix(got, eraseOf(4)) {
		t.Fatalf("the second frame does not erase the first: %q", got)
	}
	l := lines(strings.TrimPrefix(got, eraseOf(4)))
	if len(l) != 4 || !strings.Contains(l[1], "in       500  out       500     1,000/s  [######------------------]  25.0%  ETA 0:02") ||
		!strings.Contains(l[2], "200/s") {
		t.Fatalf("second frame:\n%s", strings.Join(l, "\n"))
	}

	// A log line written meanwhile goes above the block, drawn again
	// below it.
	c.add(100 * time.Millisecond)
	out.Reset()
	w := d.Writer(out)
	if _, err := w.Write([]byte("level=INFO msg=hello\n")); err != nil {
		t.Fatal(err)
	}
	got = out.String()
	if !strings.HasPrefix(got, eraseOf(4)+"level=INFO msg=hello\n") || strings.Count(got, "orders  run 7") != 1 {
		t.Fatalf("log line through the writer: %q", got)
	}

	// Part of a line: the block waits until it is ended.
	c.add(100 * time.Millisecond)
	out.Reset()
	_, _ = w.Write([]byte("partial "))
	c.add(time.Second)
	d.tick()
	if got := out.String(); got != eraseOf(4)+"partial " {
		t.Fatalf("a block drawn after part of a line: %q", got)
	}
	_, _ = w.Write([]byte("end\n"))
	if got := out.String(); !strings.HasPrefix(got, eraseOf(4)+"partial end\norders  run 7  0:02\n") || len(lines(got)) != 5 {
		t.Fatalf("block not drawn after the line ended: %q", got)
	}

	// Removing the job erases its lines; nothing more is drawn.
	out.Reset()
	d.Remove("orders")
	if got := out.String(); got != eraseOf(4) {
		t.Fatalf("Remove wrote %q, want the block erased", got)
	}
	out.Reset()
	d.tick()
	_, _ = w.Write([]byte("summary\n"))
	if got := out.String(); got != "summary\n" {
		t.Fatalf("after Remove: %q", got)
	}
}

func TestDisplayStop(t *testing.T) {
	c := newClock()
	d, out := newTerminal(c)
	d.Add(newFakeJob("a"))
	d.Add(newFakeJob("b"))
	d.tick()
	if n := len(lines(out.String())); n != 8 {
		t.Fatalf("two jobs drew %d lines, want 8", n)
	}
	out.Reset()
	d.Start()
	d.Stop()
	d.Stop()
	if got := out.String(); !strings.HasSuffix(got, eraseOf(8)) {
		t.Fatalf("Stop wrote %q, want the block erased last", got)
	}
	out.Reset()
	d.Add(newFakeJob("c"))
	d.tick()
	w := d.Writer(out)
	_, _ = w.Write([]byte("table\n"))
	if got := out.String(); got != "table\n" {
		t.Fatalf("after Stop: %q, want only what was written", got)
	}
}

func TestDisplayBlockFitsTheScreen(t *testing.T) {
	var out bytes.Buffer
	d := New(Options{Terminal: true, Out: &out, Size: func() (int, int) { return 30, 3 }})
	d.Add(newFakeJob("orders"))
	d.tick()
	l := lines(out.String())
	if len(l) != 2 {
		t.Fatalf("a screen of 3 rows got %d lines, want 2", len(l))
	}
	for _, s := range l {
		if len(s) > 29 {
			t.Errorf("line longer than the screen is wide: %q", s)
		}
	}
}

func TestDisplayLog(t *testing.T) {
	c := newClock()
	var buf bytes.Buffer
	d := New(Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Now: c.Now, BacklogTimeout: 10 * time.Millisecond})
	j := newFakeJob("orders")
	j.slow = "write"
	d.Add(j)
	if w := d.Writer(&buf); w != &buf {
		t.Fatalf("Writer off a terminal wraps: %T", w)
	}
	d.tick()
	j.set(0, 300, 300, 600)
	j.set(2, 20, 20, 600)
	c.add(10 * time.Second)
	d.tick()
	d.Add(newFakeJob("gone"))
	d.Remove("gone")
	d.tick()
	recs := lines(buf.String())
	if len(recs) != 3 || strings.Contains(buf.String(), `"gone"`) {
		t.Fatalf("got %d log lines, want 2:\n%s", len(recs), buf.String())
	}
	var rec progressRecord
	if err := json.Unmarshal([]byte(recs[1]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"read":  {"in": 300.0, "out": 300.0, "rate": 30.0, "bytes_read": 600.0, "bytes_total": 1000.0, "percent": 60.0, "eta": "7s"},
		"parse": {"in": 0.0, "out": 0.0, "rate": 0.0, "pending": 1201.0},
		"write": {"in": 20.0, "out": 20.0, "rate": 2.0}, // its backlog request timed out
	}
	if rec.Msg != "progress" || rec.Pipeline != "orders" || rec.Run != 7 {
		t.Fatalf("log line %s", recs[1])
	}
	for stage, attrs := range want {
		for k, v := range attrs {
			if rec.Stages[stage][k] != v {
				t.Errorf("%s.%s = %v, want %v (line %s)", stage, k, rec.Stages[stage][k], v, recs[1])
			}
		}
		if len(rec.Stages[stage]) != len(attrs) {
			t.Errorf("%s: %v, want %v", stage, rec.Stages[stage], attrs)
		}
	}
}

// TestFirstSampleHasRates: the first sample after a job is added has
// rates and an ETA, counted from when it was added.
func TestFirstSampleHasRates(t *testing.T) {
	c := newClock()
	var buf bytes.Buffer
	d := New(Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Now: c.Now})
	j := newFakeJob("orders")
	j.set(0, 0, 0, 100) // a resumed source, a tenth read before
	d.Add(j)
	c.add(2 * time.Second)
	j.set(0, 200, 200, 500)
	d.tick()
	var rec progressRecord
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if read := rec.Stages["read"]; read["rate"] != 100.0 || read["eta"] != "3s" || read["percent"] != 50.0 {
		t.Fatalf("first sample of the source: %v, want rate 100, eta 3s (500 bytes left at 200/s), 50%%", read)
	}
}

// progressRecord is a "progress" log line as JSON.
type progressRecord struct {
	Msg      string
	Pipeline string
	Run      uint64
	Stages   map[string]map[string]any
}

// TestETAForgetsAJump: a source that jumps ahead (resuming at its
// checkpoint after the display began to watch it) gets the ETA of its
// rate since, once the jump is older than etaWindow.
func TestETAForgetsAJump(t *testing.T) {
	c := newClock()
	var buf bytes.Buffer
	d := New(Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Now: c.Now})
	j := newFakeJob("orders")
	d.Add(j)
	done := int64(500) // the jump
	for range 30 {
		c.add(time.Second)
		j.set(0, 0, 0, done)
		buf.Reset()
		d.tick()
		done += 10
	}
	var rec progressRecord
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	// 790 read, 10 a second: 21 seconds left.
	if read := rec.Stages["read"]; read["bytes_read"] != 790.0 || read["eta"] != "21s" {
		t.Fatalf("after the jump: %v, want 790 bytes read and eta 21s", read)
	}
}

// TestRateWindow: rates are measured over the window, so that counts
// that move in batches show a steady rate.
func TestRateWindow(t *testing.T) {
	c := newClock()
	j := newFakeJob("orders")
	w := newWatched(j, c.Now())
	var in uint64
	for i := range 12 {
		c.add(500 * time.Millisecond)
		if i%2 == 1 {
			in += 100 // a batch every second
		}
		j.set(1, in, in, 0)
		rate := w.sample(context.Background(), c.Now(), 2*time.Second, time.Second).Rows[1].Rate
		if i >= 4 && rate != 100 {
			t.Fatalf("sample %d: rate %v, want 100 (a batch of 100 a second)", i, rate)
		}
	}
}
