package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/lease"
	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// deployment is one version of a deployed pipeline running in a worker:
// its transform and sink stages run as long as it does, each of its
// sources runs wherever its lease is held.
type deployment struct {
	a       *agent
	d       *Deployment
	started time.Time
	job     *runner.Job // nil when the version could not start
	local   []*pipeline.Stage
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	tasks   sync.WaitGroup // the stages' goroutines

	mu     sync.Mutex
	err    error // why the version could not start
	states map[string]WorkerStage
	rates  map[string]*rateWindow
}

// start starts version d of a pipeline. A version that cannot start (its
// spec does not load here, or the worker's policy refuses it; the streams
// cannot be provisioned) is kept with its error, which the heartbeat
// reports, until the next version.
func (a *agent) start(ctx context.Context, d *Deployment) *deployment {
	dep := &deployment{a: a, d: d, started: time.Now(), states: make(map[string]WorkerStage), rates: make(map[string]*rateWindow)}
	dep.log = a.log.With("pipeline", d.Name, "version", d.Version)
	policy := a.opts.Policy
	p, err := pipeline.Parse(d.File, []byte(d.Spec), pipeline.Options{Registry: a.opts.Registry, Policy: &policy})
	if err != nil {
		dep.err = err
		dep.log.Error("pipeline cannot start", "err", err)
		return dep
	}
	var names []string
	for _, s := range p.Stages {
		if a.matches(p.Name, s.Name) {
			dep.local = append(dep.local, s)
			names = append(names, s.Name)
		}
	}
	if len(dep.local) == 0 {
		dep.log.Info("no stage of the pipeline matches this worker's stages")
		return dep
	}
	// The control buckets get as many copies as the pipeline's streams.
	err = retry.WhilePlacing(ctx, dep.log, func() error {
		for _, b := range []string{schema.PipelinesBucket, schema.WorkersBucket, schema.LeasesBucket, schema.StateBucket} {
			if _, err := schema.EnsureBucket(ctx, a.js, schema.Bucket(b, p.Settings.Replicas, 0)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		dep.job, err = runner.Open(ctx, a.nc, p, runner.Options{
			Registry: a.opts.Registry, Logger: a.opts.Logger, Stdin: a.opts.Stdin, Stdout: a.opts.Stdout,
			StopTimeout: a.opts.StopTimeout, WorkerID: a.opts.ID, Stages: names, Run: d.Run, LeaseTTL: a.ttl,
			Observer: a.opts.Observer, Tracer: a.opts.Tracer,
		})
	}
	if err != nil {
		dep.err = err
		dep.log.Error("pipeline cannot start", "err", err)
		return dep
	}
	dep.ctx, dep.cancel = context.WithCancel(ctx)
	for _, s := range dep.local {
		if s.Role == stages.RoleSource {
			dep.tasks.Go(func() { dep.ownSource(s) })
		} else {
			dep.tasks.Go(func() { dep.keepStage(s) })
		}
	}
	dep.log.Info("pipeline started", "run", d.Run, "stages", len(dep.local))
	if a.opts.Started != nil {
		a.opts.Started(dep.job)
	}
	return dep
}

// stop stops the version cleanly: sources store their checkpoints and
// release their leases, workers finish their batches, sinks flush.
func (d *deployment) stop() {
	if d.job == nil {
		return
	}
	d.cancel()
	d.tasks.Wait()
	if err := d.job.Close(); err != nil {
		d.log.Error("stages did not close cleanly", "err", err)
	}
	if d.a.opts.Stopped != nil {
		d.a.opts.Stopped(d.d.Name)
	}
	d.log.Info("pipeline stopped")
}

func (d *deployment) state(s *pipeline.Stage) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.states[s.Name].State
}

func (d *deployment) setState(s *pipeline.Stage, state string, err error) {
	st := WorkerStage{Name: s.Name, State: state}
	if err != nil {
		st.Error = err.Error()
	}
	d.mu.Lock()
	d.states[s.Name] = st
	d.mu.Unlock()
}

// restartPause is how long a stage that cannot start waits before it is
// tried again.
var restartPause = retry.Backoff{Min: time.Second, Max: 30 * time.Second}

// keepStage builds a transform or sink stage and starts its workers; a
// stage that cannot be built now (a sink whose file another process
// writes) is tried again until the version stops.
func (d *deployment) keepStage(s *pipeline.Stage) {
	log := d.log.With("stage", s.Name)
	for failures := 0; ; {
		err := d.job.Start(s)
		if err == nil {
			d.setState(s, StageRunning, nil)
			return
		}
		var wait time.Duration
		switch {
		case errors.Is(err, runner.ErrStopped):
			return
		case errors.Is(err, stages.ErrBusy):
			if d.state(s) != StageStandby {
				log.Info("standing by", "reason", err)
			}
			d.setState(s, StageStandby, nil)
			wait = d.a.ttl / 3
		default:
			wait = restartPause.Delay(failures)
			failures++
			d.setState(s, StageFailed, err)
			log.Error("stage cannot start; trying again", "err", err, "in", wait.String())
		}
		if !retry.Sleep(d.ctx, wait) {
			return
		}
	}
}

// ownSource runs source stage s whenever this worker holds its lease,
// until the run has finished or the version stops. Another worker stands
// by meanwhile, and takes the source over from its checkpoint when this
// one dies.
func (d *deployment) ownSource(s *pipeline.Stage) {
	log := d.log.With("stage", s.Name)
	a := d.a
	holder := schema.LeaseHolder{Worker: a.opts.ID, Host: a.info.Host, PID: a.info.PID}
	key := schema.CheckpointKey(d.d.Name, s.Name)
	for d.ctx.Err() == nil {
		ended, err := d.job.Ended(d.ctx)
		if err == nil && ended {
			d.setState(s, StageDone, nil)
			return
		}
		holder.Since = time.Now().UTC()
		l, ok, err := lease.Acquire(d.ctx, a.leases, a.ttl, key, holder)
		switch {
		case err != nil:
			if d.ctx.Err() == nil {
				log.Warn("source lease not taken", "err", err)
			}
		case !ok:
			d.setState(s, StageStandby, nil)
		default:
			if d.own(s, l, log) {
				continue // at once: the run may have finished
			}
		}
		if !retry.Sleep(d.ctx, a.ttl/3) {
			return
		}
	}
}

// own runs source s under lease l: from its checkpoint until it ends,
// then until the run has finished, which it records; or until the lease
// is lost or the version stops. It reports whether it ended without a
// failure.
func (d *deployment) own(s *pipeline.Stage, l *lease.Lease, log *slog.Logger) bool {
	ctx, lose := context.WithCancel(d.ctx)
	var keeping sync.WaitGroup
	keeping.Go(func() {
		l.Keep(ctx, func() {
			log.Warn("source lease lost: stopping the source")
			lose()
		})
	})
	d.setState(s, StageRunning, nil)
	log.Info("source taken: reading from its checkpoint")
	err := d.job.RunSource(ctx, s)
	if err == nil {
		err = d.finish(ctx)
	}
	failed := err != nil && ctx.Err() == nil
	if failed {
		d.setState(s, StageFailed, err)
		log.Error("source failed; its lease is released", "err", err)
	}
	lose()
	keeping.Wait()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), 5*time.Second)
	defer cancel()
	_ = l.Release(rctx) // a lease lost or expired is not ours to delete
	if d.state(s) == StageRunning {
		d.setState(s, StageStandby, nil)
	}
	return !failed
}

// finish waits, after a source ended, until the whole run has finished
// (every source of the run has ended, every stage has drained) and
// records it as finished.
func (d *deployment) finish(ctx context.Context) error {
	if err := d.job.WaitFinished(ctx, nil); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := d.job.Record(ctx, schema.RunFinished); err != nil {
		return err
	}
	d.log.Info("run finished", "run", d.job.ID())
	return nil
}

// report returns what the heartbeat says about this version.
func (d *deployment) report() WorkerPipeline {
	wp := WorkerPipeline{Name: d.d.Name, Version: d.d.Version, Run: d.d.Run}
	if d.err != nil {
		wp.Error = d.err.Error()
		return wp
	}
	if d.job == nil {
		return wp
	}
	if err := d.job.Err(); err != nil {
		wp.Error = err.Error()
	}
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.local {
		st := d.states[s.Name]
		st.Name = s.Name
		if st.State == "" {
			st.State = StageStandby
		}
		sum := d.job.Stage(s.Name)
		st.In, st.Out, st.Errors = sum.In, sum.Out, sum.Errors
		if !sum.HeldSince.IsZero() && st.State == StageRunning {
			st.State, st.HeldSince, st.HeldBy = StageHeld, sum.HeldSince.UTC(), sum.HeldBy
		}
		rw := d.rates[s.Name]
		if rw == nil {
			rw = &rateWindow{samples: []rateSample{{d.started, 0}}}
			d.rates[s.Name] = rw
		}
		st.Rate = rw.add(now, st.In)
		wp.Stages = append(wp.Stages, st)
	}
	return wp
}

// rateWindow computes a counter's rate over the last minute from samples.
type rateWindow struct {
	samples []rateSample
}

type rateSample struct {
	at time.Time
	n  uint64
}

// rateSpan is the span a rate is computed over.
const rateSpan = time.Minute

// add records the counter's value n at now and returns its rate per
// second since the oldest sample within the last minute.
func (w *rateWindow) add(now time.Time, n uint64) float64 {
	w.samples = append(w.samples, rateSample{now, n})
	i := 0
	for i < len(w.samples)-1 && now.Sub(w.samples[i].at) > rateSpan {
		i++
	}
	w.samples = w.samples[i:]
	first := w.samples[0]
	secs := now.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(n-first.n) / secs
}
