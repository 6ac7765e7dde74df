package cluster

import (
	"context"
	"os"
	"slices"
	"time"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
)

// LocalWorker is the worker ID a local run ("sluice run") reports itself
// under in its status: it is the one process that runs its stages.
const LocalWorker = "local"

// LocalStatus returns the status of pipeline p, run by job in this
// process since started (a "sluice run", not a deployment), in the shape
// [Status] reports a deployed pipeline in, so that the same printing
// serves both: its Deployment has Version 0, and the counts are this
// process's. The backlog of each stage is asked of the server, within
// ctx; a stage whose backlog cannot be read says why in Unknown.
func LocalStatus(ctx context.Context, p *pipeline.Pipeline, job *runner.Job, started time.Time) PipelineStatus {
	host, _ := os.Hostname()
	d := &Deployment{Name: p.Name, Run: job.ID(), File: p.File, Stages: outline(p), Deployed: started, Host: host}
	d.Settings.Replicas = p.Settings.Replicas
	ps := PipelineStatus{Deployment: d, RunState: schema.RunRunning}
	if err := job.Err(); err != nil {
		ps.Errors = append(ps.Errors, err.Error())
	}
	local := job.Stages()
	for _, s := range d.Stages {
		sum := job.Stage(s.Name)
		ss := StageStatus{DeployedStage: s, In: sum.In, Out: sum.Out, Errors: sum.Errors, DeadLetters: sum.DeadLetters, Rate: sum.Rate, Fused: job.FusedBefore(s.Name)}
		if slices.Contains(local, s.Name) {
			ss.Workers = []string{LocalWorker}
			if !sum.HeldSince.IsZero() {
				ss.Held = []StageHold{{Worker: LocalWorker, Since: sum.HeldSince, Error: sum.HeldBy}}
			}
		}
		b, ok, err := job.Backlog(ctx, s.Name)
		switch {
		case err != nil:
			ss.Unknown = err.Error()
		case ok:
			ss.Pending, ss.AckPending = b.Pending, b.AckPending
		}
		ps.Stages = append(ps.Stages, ss)
	}
	return ps
}

// LocalReport returns the status report of a local run: its pipelines
// (see [LocalStatus]) and this process as their one worker.
func LocalReport(ps []PipelineStatus, started time.Time) *StatusReport {
	host, _ := os.Hostname()
	w := WorkerInfo{ID: LocalWorker, Host: host, PID: os.Getpid(), Started: started, Seen: time.Now()}
	for _, p := range ps {
		w.Pipelines = append(w.Pipelines, WorkerPipeline{Name: p.Deployment.Name, Run: p.Deployment.Run})
	}
	return &StatusReport{Workers: []WorkerInfo{w}, Pipelines: ps}
}

// IsLocal reports whether d is the outline of a local run (see
// [LocalStatus]) rather than a deployment.
func IsLocal(d *Deployment) bool { return d.Version == 0 }
