package runner_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/runner"
)

// interrupt runs p until the collector holds at least n records of stage,
// then stops it as a signal would, and returns the summary.
func (e *env) interrupt(t *testing.T, yaml, stage string, n int, opts runner.Options) *runner.Summary {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		natstest.WaitFor(t, time.Minute, fmt.Sprintf("%d records at %s", n, stage), func() bool {
			e.c.mu.Lock()
			defer e.c.mu.Unlock()
			return len(e.c.msgs[stage]) >= n || ctx.Err() != nil
		})
		cancel()
	}()
	opts.Registry = e.reg
	sum, err := runner.Run(ctx, e.nc, e.parse(t, yaml), opts)
	cancel()
	<-done
	if err != nil {
		t.Fatalf("interrupted run: %v", err)
	}
	return sum
}

const resumeYAML = `
name: resume
settings:
  max_buffer: 500
stages:
  - name: gen
    source: generate
    with: {count: 6000, template: '{"n": seq}'}
  - name: double
    transform: map
    replicas: 2
    with: {expr: '{"n": n, "twice": n * 2}'}
  - name: out
    sink: collect
`

func TestRunResumesAnInterruptedRun(t *testing.T) {
	e := newEnv(t)
	first := e.interrupt(t, resumeYAML, "out", 1000, runner.Options{})
	if !first.Interrupted || first.Resumed || first.Run != 1 {
		t.Fatalf("first summary = %+v, want run 1 interrupted", first)
	}
	got := len(e.c.sorted("out"))
	if got >= 6000 {
		t.Fatalf("the run was not interrupted: %d records out", got)
	}

	second := e.run(t, context.Background(), e.parse(t, resumeYAML))
	if second.Interrupted || !second.Resumed || second.Run != 1 {
		t.Fatalf("second summary = %+v, want run 1 resumed and finished", second)
	}
	var want []string
	for i := range 6000 {
		want = append(want, fmt.Sprintf(`{"n":%d,"twice":%d}`, i, 2*i))
	}
	slices.Sort(want)
	if out := e.c.sorted("out"); !slices.Equal(out, want) {
		t.Fatalf("after the resume the sink holds %d records (%d distinct), want each of %d once", len(out), len(slices.Compact(slices.Clone(out))), len(want))
	}
	// The counts are the whole run's: a source that started over instead
	// of at its checkpoint would count more.
	gen := stageSum(t, second, "gen")
	if gen.In != 6000 || gen.Out != 6000 {
		t.Errorf("over the whole run the source read %d and published %d records, want 6000", gen.In, gen.Out)
	}

	// The run finished: running again starts run 2.
	third := e.run(t, context.Background(), e.parse(t, resumeYAML))
	if third.Resumed || third.Run != 2 {
		t.Fatalf("third summary = %+v, want a new run 2", third)
	}
}

func TestRunFreshDiscardsAnInterruptedRun(t *testing.T) {
	e := newEnv(t)
	e.interrupt(t, resumeYAML, "out", 1000, runner.Options{})
	e.c.mu.Lock()
	clear(e.c.msgs)
	e.c.mu.Unlock()
	sum, err := runner.Run(context.Background(), e.nc, e.parse(t, resumeYAML), runner.Options{Registry: e.reg, Fresh: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resumed || sum.Run != 2 || sum.Interrupted {
		t.Fatalf("summary = %+v, want a new run 2, finished", sum)
	}
	// Nothing of run 1 is left to process: the sink gets run 2's records,
	// each once.
	if out := e.c.sorted("out"); len(out) != 6000 || len(slices.Compact(out)) != 6000 {
		t.Fatalf("sink got %d records, want 6000 distinct", len(out))
	}
}

// TestRunResumeReadsStdinAnew: a source that cannot resume reads new
// input in the resumed run, and its records are not taken for duplicates
// of those the interrupted run published.
func TestRunResumeReadsStdinAnew(t *testing.T) {
	e := newEnv(t)
	const yaml = `
name: stdin-resume
stages:
  - {name: in, source: stdin}
  - {name: out, sink: collect}
`
	lines := func(from, to int) string {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "{\"n\":%d}\n", i)
		}
		return b.String()
	}
	// The first run's input never ends: the run is interrupted.
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	go func() { _, _ = io.WriteString(pw, lines(0, 100)) }()
	first := e.interrupt(t, yaml, "out", 100, runner.Options{Stdin: pr})
	if !first.Interrupted {
		t.Fatalf("first = %+v, want interrupted", first)
	}
	// As if it had been killed before it stored a checkpoint.
	kv, err := e.js.KeyValue(context.Background(), schema.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(context.Background(), "source.stdin-resume.in"); err != nil {
		t.Fatal(err)
	}
	sum, err := runner.Run(context.Background(), e.nc, e.parse(t, yaml), runner.Options{Registry: e.reg, Stdin: strings.NewReader(lines(100, 200))})
	if err != nil || !sum.Resumed {
		t.Fatalf("second run: %+v, %v", sum, err)
	}
	if got, want := e.c.sorted("out"), seqRecords(0, 200, `{"n":%d}`); !slices.Equal(got, want) {
		t.Fatalf("sink holds %d records, want the 200 of both inputs", len(got))
	}
}
