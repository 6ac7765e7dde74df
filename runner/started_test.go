package runner_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runner"
)

// TestRunStarted: Options.Started is called once the stages run, with a
// Job that names the pipeline and its local stages, reads their live
// counts and asks the consumers' backlog (none for a source).
func TestRunStarted(t *testing.T) {
	e := newEnv(t)
	p := e.parse(t, `name: started
stages:
  - {name: gen, source: generate, with: {count: 20}}
  - {name: double, transform: map, with: {expr: '{"n": seq * 2}'}}
  - {name: out, sink: discard}
`)
	var calls int
	var job *runner.Job
	var genBacklog, doubleBacklog bool
	var backlogErr error
	sum, err := runner.Run(context.Background(), e.nc, p, runner.Options{Registry: e.reg, Started: func(j *runner.Job) {
		calls++
		job = j
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, genBacklog, _ = j.Backlog(ctx, "gen")
		_, doubleBacklog, backlogErr = j.Backlog(ctx, "double")
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("Started called %d times, want 1", calls)
	}
	if job.Pipeline() != "started" || !slices.Equal(job.Stages(), []string{"gen", "double", "out"}) {
		t.Errorf("Job: pipeline %q, stages %q; want started, [gen double out]", job.Pipeline(), job.Stages())
	}
	if genBacklog || !doubleBacklog || backlogErr != nil {
		t.Errorf("Backlog: source ok %v, transform ok %v, err %v; want false, true, nil", genBacklog, doubleBacklog, backlogErr)
	}
	// The Job's counts are the ones the summary reports.
	if got, want := job.Stage("double").Out, stageSum(t, sum, "double").Out; got != want || got != 20 {
		t.Errorf("Job.Stage(double).Out = %d, summary %d; want 20", got, want)
	}
}
