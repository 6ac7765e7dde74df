package runner_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/dlq"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

const replayYAML = `
name: replay
settings:
  max_deliver: 3
  backoff: [5ms]
stages:
  - name: gen
    source: generate
    with: {count: 50, template: '{"n": seq}'}
  - name: work
    transform: flaky
    with: {every_n: 7, fail_times: 2, always_n: ALWAYS}
  - name: out
    sink: collect
  - name: all
    from: gen
    sink: collect
`

// TestDeadLetterReplay: records failing twice succeed on their third
// attempt; records always failing end in the dead-letter stream with their
// headers; once the stage is fixed, a replay delivers them to that stage
// alone, and removes them from the dead-letter stream.
func TestDeadLetterReplay(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	broken := e.parse(t, strings.Replace(replayYAML, "ALWAYS", "5", 1))
	sum := e.run(t, ctx, broken)
	// Multiples of 5 always fail: 10 records.
	work := stageSum(t, sum, "work")
	if work.Out != 40 || work.DeadLetters != 10 {
		t.Fatalf("work = %+v, want 40 out and 10 dead letters", work)
	}

	dead, err := dlq.List(ctx, e.nc, "replay", dlq.Filter{Stage: "work"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 10 {
		t.Fatalf("%d dead letters, want 10", len(dead))
	}
	for i, dl := range dead {
		n := 5 * i
		if dl.Stage != "work" || dl.Deliveries != 3 || dl.Error != fmt.Sprintf("always failing %d", n) ||
			dl.Subject != "sluice.replay.gen" || string(dl.Data) != fmt.Sprintf(`{"n":%d}`, n) ||
			dl.Header.Get(stages.HeaderOrigin) == "" || dl.Header.Get(stages.HeaderInputID) == "" {
			t.Errorf("dead letter %d: %+v", i, dl)
		}
	}
	if few, err := dlq.List(ctx, e.nc, "replay", dlq.Filter{}, 3); err != nil || len(few) != 3 {
		t.Fatalf("with a limit of 3: %d, %v", len(few), err)
	}
	if none, err := dlq.List(ctx, e.nc, "replay", dlq.Filter{Stage: "out"}, 0); err != nil || len(none) != 0 {
		t.Fatalf("of stage out: %d, %v", len(none), err)
	}

	res, err := dlq.Replay(ctx, e.nc, "replay", dlq.Filter{})
	if err != nil || res.Replayed != 10 || res.Skipped != 0 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if left, err := dlq.List(ctx, e.nc, "replay", dlq.Filter{}, 0); err != nil || len(left) != 0 {
		t.Fatalf("after the replay %d dead letters are left (%v)", len(left), err)
	}

	// The fixed stage, without the source: it processes the replays.
	fixed := e.parse(t, strings.Replace(replayYAML, "ALWAYS", "0", 1))
	sum, err = runner.Run(ctx, e.nc, fixed, runner.Options{Registry: e.reg, Stages: []string{"work", "out", "all"}})
	if err != nil {
		t.Fatal(err)
	}
	// The summary counts the whole run: the first process's counts and
	// the replays. 0 and 35, multiples of 7 too, fail twice again before
	// they pass.
	if fixed := stageSum(t, sum, "work"); fixed.In-work.In != 14 || fixed.Out-work.Out != 10 || fixed.Errors-work.Errors != 4 || fixed.DeadLetters != work.DeadLetters {
		t.Errorf("fixed work = %+v after %+v, want the 10 replays out, two of them after two retries", fixed, work)
	}
	if all := stageSum(t, sum, "all"); all.In != 50 {
		t.Errorf("a replay reached stage all, which reads the same stream: %+v, want the 50 of the first process", all)
	}
	want := seqRecords(0, 50, `{"n":%d}`)
	if got := e.c.sorted("out"); !slices.Equal(got, want) {
		t.Fatalf("out has %d records, want each of the 50 once", len(got))
	}
}

func TestDeadLetterReplaySkipsSourceRecords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	writeTestFile(t, e.dir, "in.csv", "a,b\n1,2\n3\n")
	e.run(t, ctx, e.parse(t, `
name: srcdlq
stages:
  - name: read
    source: file
    with: {path: $DIR/in.csv}
  - name: out
    sink: collect
`))
	res, err := dlq.Replay(ctx, e.nc, "srcdlq", dlq.Filter{})
	if !errors.Is(err, dlq.ErrNotReplayable) || res.Skipped != 1 || res.Replayed != 0 {
		t.Fatalf("got %+v, %v; want 1 skipped with ErrNotReplayable", res, err)
	}
	if left, _ := dlq.List(ctx, e.nc, "srcdlq", dlq.Filter{}, 0); len(left) != 1 {
		t.Fatalf("%d dead letters left, want the source's 1", len(left))
	}
}

func writeTestFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReplayAfterFinishedRun: dead letters carry their run; once they are
// replayed, the next run of the whole pipeline resumes the finished run
// for the replays alone (the source reads nothing), unless it is fresh,
// which starts a new run and discards them.
func TestReplayAfterFinishedRun(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fresh bool
		want  runner.Summary
		gen   uint64 // records the source reads
		work  uint64 // inputs of the fixed stage
	}{
		{"replay", false, runner.Summary{Run: 1, Resumed: true, Replay: true}, 0, 10},
		{"fresh", true, runner.Summary{Run: 2}, 50, 50},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			e.run(t, ctx, e.parse(t, strings.Replace(replayYAML, "ALWAYS", "5", 1)))
			dead, err := dlq.List(ctx, e.nc, "replay", dlq.Filter{Run: 1}, 0)
			if err != nil || len(dead) != 10 {
				t.Fatalf("%d dead letters of run 1 (%v), want 10", len(dead), err)
			}
			if res, err := dlq.Replay(ctx, e.nc, "replay", dlq.Filter{}); err != nil || res.Replayed != 10 {
				t.Fatalf("replay: %+v, %v", res, err)
			}
			fixed := e.parse(t, strings.Replace(replayYAML, "ALWAYS", "0", 1))
			sum, err := runner.Run(ctx, e.nc, fixed, runner.Options{Registry: e.reg, Fresh: tt.fresh})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Run != tt.want.Run || sum.Resumed != tt.want.Resumed || sum.Replay != tt.want.Replay || sum.Interrupted {
				t.Errorf("summary: run %d resumed %t replay %t interrupted %t, want %+v", sum.Run, sum.Resumed, sum.Replay, sum.Interrupted, tt.want)
			}
			if gen := stageSum(t, sum, "gen"); gen.In != tt.gen {
				t.Errorf("the source read %d records, want %d", gen.In, tt.gen)
			}
			if work := stageSum(t, sum, "work"); work.In-work.Errors != tt.work || work.DeadLetters != 0 {
				t.Errorf("work = %+v, want %d inputs", work, tt.work)
			}
			if !tt.fresh {
				// The first run's 40 and the 10 replays.
				if got, want := e.c.sorted("out"), seqRecords(0, 50, `{"n":%d}`); !slices.Equal(got, want) {
					t.Errorf("out has %d records, want each of the 50 once", len(got))
				}
			}
			// The next run is a new one: nothing waits.
			if sum := e.run(t, ctx, fixed); sum.Run != tt.want.Run+1 || sum.Resumed {
				t.Errorf("the next run: run %d resumed %t, want a new run %d", sum.Run, sum.Resumed, tt.want.Run+1)
			}
		})
	}
}
