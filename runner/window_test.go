package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// windowBase is the Unix second the window tests' event times count from;
// a multiple of 10 s, so that 10 s windows start on it.
const windowBase = 1700000000

// winRec is an input record of the window tests: t seconds after
// windowBase.
type winRec struct {
	user string
	t    int
	v    int
}

// writeWindowInput writes recs as JSON lines in the order given.
func writeWindowInput(t *testing.T, dir string, recs []winRec) string {
	t.Helper()
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "{\"user\": %q, \"ts\": %d, \"v\": %d}\n", r.user, windowBase+r.t, r.v)
	}
	path := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// win is an expected window output: start and end in seconds after
// windowBase, then the other fields.
func win(key string, start, end int, fields map[string]any) map[string]any {
	out := map[string]any{
		"key":          key,
		"window_start": time.Unix(windowBase+int64(start), 0).UTC().Format(time.RFC3339Nano),
		"window_end":   time.Unix(windowBase+int64(end), 0).UTC().Format(time.RFC3339Nano),
	}
	for k, v := range fields {
		out[k] = v
	}
	return out
}

// decoded returns the records a collect sink got, decoded, sorted by
// their JSON text.
func decoded(t *testing.T, e *env, stage string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, s := range e.c.sorted(stage) {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		out = append(out, m)
	}
	return out
}

// sortedJSON orders records by their JSON text.
func sortedJSON(recs []map[string]any) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		b, _ := json.Marshal(r)
		out[i] = string(b)
	}
	sort.Strings(out)
	return out
}

const windowPipeline = `
name: win
settings: {max_out_of_orderness: %s}
stages:
  - name: src
    source: file
    with: {path: %s}
    event_time: ts
    key: user
    partitions: 1 # one partition: the watermark each record sees is exact
  - name: w
    transform: window
    with: %s
  - name: out
    sink: collect
    from: w
`

// Windows over a fixed input with records out of order give exactly the
// aggregates worked out by hand in the comments: the watermark before each
// record is the latest event time before it minus max_out_of_orderness.
func TestWindows(t *testing.T) {
	tests := []struct {
		name string
		lag  string
		with string
		recs []winRec
		want []map[string]any
	}{
		{
			name: "tumbling",
			lag:  "2s",
			with: `{type: tumbling, size: 10s, key: user, aggregate: {n: count, total: 'sum(v)', first: 'first(v)', last: 'last(v)', vs: 'collect(v)', kinds: 'distinct_count(v % 2)', low: 'min(v)', high: 'max(v)', mean: 'avg(v)'}}`,
			recs: []winRec{
				{"a", 1, 1},  // watermark after: -1
				{"b", 3, 2},  // 1
				{"a", 12, 3}, // 10: a[0,10) and b[0,10) close
				{"a", 8, 4},  // late for a[0,10), no allowed lateness: dropped
				{"b", 14, 5}, // 12
				{"b", 25, 6}, // 23: a[10,20) and b[10,20) close
				{"b", 21, 7}, // in b[20,30), open
			},
			want: []map[string]any{
				win("a", 0, 10, map[string]any{"n": 1.0, "total": 1.0, "first": 1.0, "last": 1.0, "vs": []any{1.0}, "kinds": 1.0, "low": 1.0, "high": 1.0, "mean": 1.0}),
				win("b", 0, 10, map[string]any{"n": 1.0, "total": 2.0, "first": 2.0, "last": 2.0, "vs": []any{2.0}, "kinds": 1.0, "low": 2.0, "high": 2.0, "mean": 2.0}),
				win("a", 10, 20, map[string]any{"n": 1.0, "total": 3.0, "first": 3.0, "last": 3.0, "vs": []any{3.0}, "kinds": 1.0, "low": 3.0, "high": 3.0, "mean": 3.0}),
				win("b", 10, 20, map[string]any{"n": 1.0, "total": 5.0, "first": 5.0, "last": 5.0, "vs": []any{5.0}, "kinds": 1.0, "low": 5.0, "high": 5.0, "mean": 5.0}),
				// At the end of the input: first and last by event time
				// (7 at 21 s, 6 at 25 s), collect in arrival order.
				win("b", 20, 30, map[string]any{"n": 2.0, "total": 13.0, "first": 7.0, "last": 6.0, "vs": []any{6.0, 7.0}, "kinds": 2.0, "low": 6.0, "high": 7.0, "mean": 6.5}),
			},
		},
		{
			name: "sliding",
			lag:  "0s",
			with: `{type: sliding, size: 10s, slide: 5s, key: user, aggregate: {n: count, total: 'sum(v)'}}`,
			recs: []winRec{
				{"x", 1, 1},  // in [-5,5) and [0,10); watermark 1
				{"x", 7, 2},  // in [0,10) and [5,15); watermark 7: [-5,5) closes
				{"x", 12, 3}, // in [5,15) and [10,20); watermark 12: [0,10) closes
			},
			want: []map[string]any{
				win("x", -5, 5, map[string]any{"n": 1.0, "total": 1.0}),
				win("x", 0, 10, map[string]any{"n": 2.0, "total": 3.0}),
				win("x", 5, 15, map[string]any{"n": 2.0, "total": 5.0}),
				win("x", 10, 20, map[string]any{"n": 1.0, "total": 3.0}),
			},
		},
		{
			name: "session",
			lag:  "0s",
			with: `{type: session, gap: 5s, key: user, aggregate: {n: count, total: 'sum(v)'}}`,
			recs: []winRec{
				{"x", 0, 1},  // x [0,5)
				{"y", 1, 2},  // y [1,6)
				{"x", 3, 3},  // x merges into [0,8)
				{"y", 10, 4}, // y [10,15); watermark 10: y[1,6) and x[0,8) close
				{"x", 20, 5}, // x [20,25); watermark 20: y[10,15) closes
				{"x", 22, 6}, // x merges into [20,27)
			},
			want: []map[string]any{
				win("y", 1, 6, map[string]any{"n": 1.0, "total": 2.0}),
				win("x", 0, 8, map[string]any{"n": 2.0, "total": 4.0}),
				win("y", 10, 15, map[string]any{"n": 1.0, "total": 4.0}),
				win("x", 20, 27, map[string]any{"n": 2.0, "total": 11.0}),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			in := writeWindowInput(t, e.dir, tt.recs)
			sum := e.run(t, context.Background(), e.parse(t, fmt.Sprintf(windowPipeline, tt.lag, in, tt.with)))
			if got, want := sortedJSON(decoded(t, e, "out")), sortedJSON(tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("windows:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
			if w := stageSum(t, sum, "w"); w.In != uint64(len(tt.recs)) {
				t.Errorf("w read %d records, want %d", w.In, len(tt.recs))
			}
		})
	}
}

// Late records: within allowed_lateness they update the window, which
// emits again with "update"; beyond it they go where late says.
func TestWindowLateRecords(t *testing.T) {
	recs := []winRec{
		{"a", 1, 1},  // watermark after: -1
		{"b", 3, 2},  // 1
		{"a", 12, 3}, // 10: a[0,10), b[0,10) close
		{"a", 8, 4},  // watermark 10 < 10+3: a[0,10) update 1
		{"b", 14, 5}, // 12
		{"a", 5, 6},  // watermark 12 < 13: a[0,10) update 2
		{"b", 25, 7}, // 23: a[10,20), b[10,20) close; [0,10) forgotten
		{"a", 9, 8},  // watermark 23 >= 10+3: late
		{"a", 19, 9}, // watermark 23 >= 20+3: late
		{"b", 21, 10},
	}
	windows := []map[string]any{
		win("a", 0, 10, map[string]any{"n": 1.0, "total": 1.0}),
		win("b", 0, 10, map[string]any{"n": 1.0, "total": 2.0}),
		win("a", 0, 10, map[string]any{"n": 2.0, "total": 5.0, "update": 1.0}),
		win("a", 0, 10, map[string]any{"n": 3.0, "total": 11.0, "update": 2.0}),
		win("a", 10, 20, map[string]any{"n": 1.0, "total": 3.0}),
		win("b", 10, 20, map[string]any{"n": 1.0, "total": 5.0}),
		win("b", 20, 30, map[string]any{"n": 2.0, "total": 17.0}),
	}
	lateRecs := []map[string]any{
		{"user": "a", "ts": float64(windowBase + 9), "v": 8.0},
		{"user": "a", "ts": float64(windowBase + 19), "v": 9.0},
	}
	for _, late := range []string{"side", "drop", "dead_letter"} {
		t.Run(late, func(t *testing.T) {
			e := newEnv(t)
			in := writeWindowInput(t, e.dir, recs)
			yaml := fmt.Sprintf(windowPipeline, "2s", in,
				`{type: tumbling, size: 10s, key: user, allowed_lateness: 3s, late: `+late+`, aggregate: {n: count, total: 'sum(v)'}}`)
			if late == "side" {
				yaml += "  - {name: late, sink: collect, from: w.late}\n"
			}
			sum := e.run(t, context.Background(), e.parse(t, yaml))
			if got, want := sortedJSON(decoded(t, e, "out")), sortedJSON(windows); !reflect.DeepEqual(got, want) {
				t.Errorf("windows:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
			}
			w := stageSum(t, sum, "w")
			switch late {
			case "side":
				if got, want := sortedJSON(decoded(t, e, "late")), sortedJSON(lateRecs); !reflect.DeepEqual(got, want) {
					t.Errorf("late records: got %s, want %s", got, want)
				}
			case "drop":
				// Counted as filtered, with the records that only fed an
				// open window.
				if w.DeadLetters != 0 {
					t.Errorf("w: %+v, want no dead letters", w)
				}
			case "dead_letter":
				dead := e.deadLetters(t, "win")
				if len(dead) != 2 || w.DeadLetters != 2 {
					t.Fatalf("%d dead letters (summary %d), want 2", len(dead), w.DeadLetters)
				}
				if reason := dead[0].Header.Get("Sluice-Error"); !strings.Contains(reason, "late record") {
					t.Errorf("dead letter reason %q", reason)
				}
			}
		})
	}
}

// TestWindowNewRunStartsFresh: a bounded windowed pipeline run a second
// time on the same server starts with fresh watermarks and window state,
// and emits the same windows again, rather than finding every record late
// behind the first run's watermark.
func TestWindowNewRunStartsFresh(t *testing.T) {
	e := newEnv(t)
	in := writeWindowInput(t, e.dir, []winRec{{"a", 1, 1}, {"b", 3, 2}, {"a", 12, 3}, {"b", 25, 4}})
	p := e.parse(t, fmt.Sprintf(windowPipeline, "0s", in, `{type: tumbling, size: 10s, key: user, aggregate: {n: count}}`))
	first := stageSum(t, e.run(t, context.Background(), p), "w")
	if first.Out == 0 {
		t.Fatalf("first run emitted no window: %+v", first)
	}
	sum := e.run(t, context.Background(), p)
	if sum.Run != 2 || sum.Resumed {
		t.Fatalf("second run: run %d resumed %v, want a new run 2", sum.Run, sum.Resumed)
	}
	if second := stageSum(t, sum, "w"); second.Out != first.Out || second.Filtered != first.Filtered {
		t.Fatalf("second run of w = %+v, want the first run's %+v", second, first)
	}
}

// TestWindowTakesACopyOnce: a copy of a record the window stage took
// before (published again after the streams forgot it, so marked as a
// possible copy) is found in the stage's intake log and not counted
// again.
func TestWindowTakesACopyOnce(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}}); err != nil {
		t.Fatal(err)
	}
	p := e.parse(t, `
name: win
settings: {max_out_of_orderness: 0s, dedup_window: 100ms}
stages:
  - name: src
    source: jetstream
    with: {stream: IN, durable: src}
    event_time: ts
    key: user
    partitions: 1
  - name: w
    transform: window
    with: {type: tumbling, size: 10s, key: user, aggregate: {n: count}}
  - name: out
    sink: collect
    from: w
`)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := runner.Run(runCtx, e.nc, p, runner.Options{Registry: e.reg})
		done <- err
	}()
	defer func() { stop(); <-done }()

	// A reader of the window stage's input besides it, to see what the
	// source published, IDs included.
	natstest.WaitFor(t, 30*time.Second, "the source's stream", func() bool {
		_, err := e.js.Stream(ctx, "SLUICE_WIN_SRC")
		return err == nil
	})
	spy, err := e.js.CreateOrUpdateConsumer(ctx, "SLUICE_WIN_SRC", jetstream.ConsumerConfig{Durable: "spy", AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(user string, ts int) {
		t.Helper()
		if _, err := e.js.Publish(ctx, "in.x", fmt.Appendf(nil, `{"user": %q, "ts": %d}`, user, windowBase+ts)); err != nil {
			t.Fatal(err)
		}
	}
	publish("a", 1)
	publish("a", 2)
	publish("b", 3)
	natstest.WaitFor(t, 30*time.Second, "the window stage to take the three records", func() bool {
		info, err := e.js.Consumer(ctx, "SLUICE_WIN_SRC", "w_0")
		if err != nil {
			info, err = e.js.Consumer(ctx, "SLUICE_WIN_SRC", "w")
		}
		if err != nil {
			return false
		}
		ci := info.CachedInfo()
		return ci.Delivered.Stream >= 3 && ci.NumAckPending == 0 && ci.NumPending == 0
	})
	batch, err := spy.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	var first jetstream.Msg
	for m := range batch.Messages() {
		first = m
	}
	if first == nil {
		t.Fatal("the spy got nothing")
	}
	// The copy: the first record as the source published it, stored again
	// once the stream's dedup window has passed.
	cp := &nats.Msg{Subject: first.Subject(), Data: first.Data(), Header: nats.Header{}}
	for k, v := range first.Headers() {
		cp.Header[k] = v
	}
	cp.Header.Set(stages.HeaderRedelivered, "1")
	natstest.WaitFor(t, 30*time.Second, "the copy stored as a new message", func() bool {
		ack, err := e.js.PublishMsg(ctx, cp)
		return err == nil && !ack.Duplicate
	})
	publish("a", 30) // closes the window [0s, 10s)
	natstest.WaitFor(t, 30*time.Second, "the window [0s, 10s) emitted", func() bool {
		return len(e.c.sorted("out")) >= 2
	})
	got := sortedJSON(decoded(t, e, "out"))
	want := sortedJSON([]map[string]any{
		win("a", 0, 10, map[string]any{"n": float64(2)}),
		win("b", 0, 10, map[string]any{"n": float64(1)}),
	})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("windows\n%v\nwant\n%v", got, want)
	}
}
