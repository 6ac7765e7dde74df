package runner

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
	"github.com/sluicehq/sluice/stages"
)

// deployment is one version of a deployed pipeline running in a worker:
// its transform and sink stages run as long as it does, each of its
// sources runs wherever its lease is held.
type deployment struct {
	a       *agent
	d       *Deployment
	started time.Time
	r       *run // nil when the version could not start
	local   []*pipeline.Stage
	inputs  map[string][]input
	ctx     context.Context
	cancel  context.CancelFunc
	crew    *crew
	tasks   sync.WaitGroup // the stages' goroutines

	mu     sync.Mutex
	err    error // why the version could not start
	units  []*unit
	states map[string]WorkerStage
	rates  map[string]*rateWindow
}

// start starts version d of a pipeline. A version that cannot start (its
// spec does not load here, the streams cannot be provisioned) is kept with
// its error, which the heartbeat reports, until the next version.
func (a *agent) start(ctx context.Context, d *Deployment) *deployment {
	dep := &deployment{a: a, d: d, started: time.Now(), states: make(map[string]WorkerStage), rates: make(map[string]*rateWindow)}
	log := a.log.With("pipeline", d.Name, "version", d.Version)
	p, err := pipeline.Parse(d.File, []byte(d.Spec), pipeline.Options{Registry: a.opts.Registry})
	if err != nil {
		dep.err = err
		log.Error("pipeline cannot start", "err", err)
		return dep
	}
	for _, s := range p.Stages {
		if a.matches(p.Name, s.Name) {
			dep.local = append(dep.local, s)
		}
	}
	if len(dep.local) == 0 {
		log.Info("no stage of the pipeline matches this worker's stages")
		return dep
	}
	r := &run{
		p:      p,
		nc:     a.nc,
		kv:     a.state,
		id:     d.Run,
		joined: true,
		opts: Options{
			Registry: a.opts.Registry, Logger: a.opts.Logger, Stdin: a.opts.Stdin, Stdout: a.opts.Stdout,
			StopTimeout: a.opts.StopTimeout, WorkerID: a.opts.ID,
		},
		log:   log,
		stats: make(map[string]*stageStats, len(p.Stages)),

		leases:   a.leases,
		leaseTTL: a.ttl,
		member:   memberID(a.opts.ID),
	}
	for _, s := range p.Stages {
		r.stats[s.Name] = new(stageStats)
	}
	err = retry.WhilePlacing(ctx, placingLog(log), func() error {
		// The control buckets get as many copies as the pipeline's
		// streams.
		for _, b := range []string{schema.PipelinesBucket, schema.WorkersBucket, schema.LeasesBucket, schema.StateBucket} {
			if _, err := schema.EnsureBucket(ctx, a.js, schema.Bucket(b, p.Settings.Replicas, 0)); err != nil {
				return err
			}
		}
		var err error
		dep.inputs, err = provision(ctx, a.js, p)
		return err
	})
	if err != nil {
		dep.err = err
		log.Error("pipeline cannot start", "err", err)
		return dep
	}
	dep.r = r
	dep.ctx, dep.cancel = context.WithCancel(ctx)
	dep.crew = newCrew(ctx, a.opts.StopTimeout)
	for _, s := range dep.local {
		if s.Role == stages.RoleSource {
			dep.tasks.Go(func() { dep.ownSource(s) })
		} else {
			dep.tasks.Go(func() { dep.keepStage(s) })
		}
	}
	log.Info("pipeline started", "run", d.Run, "stages", len(dep.local))
	return dep
}

// stop stops the version cleanly: sources store their checkpoints and
// release their leases, workers finish their batches, sinks flush.
func (d *deployment) stop() {
	if d.r == nil {
		return
	}
	d.cancel()
	d.tasks.Wait()
	d.crew.stop()
	ctx, cancel := context.WithTimeout(context.Background(), d.a.opts.StopTimeout)
	defer cancel()
	if err := closeUnits(ctx, d.units); err != nil {
		d.r.log.Error("stages did not close cleanly", "err", err)
	}
	d.r.log.Info("pipeline stopped")
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

// keepStage builds a transform or sink stage and starts its workers; a
// stage that cannot be built now (a sink whose file another process
// writes) is tried again until the version stops.
func (d *deployment) keepStage(s *pipeline.Stage) {
	log := d.r.log.With("stage", s.Name)
	pause := time.Second
	for {
		u, err := d.r.buildUnit(s, d.inputs[s.Name])
		if err == nil {
			d.mu.Lock()
			d.units = append(d.units, u)
			d.mu.Unlock()
			if err := d.crew.start(u); err != nil {
				if !errors.Is(err, errCrewStopped) {
					d.setState(s, StageFailed, err)
					log.Error("stage cannot read its input", "err", err)
				}
				return
			}
			d.setState(s, StageRunning, nil)
			return
		}
		wait := pause
		if errors.Is(err, stages.ErrBusy) {
			if d.state(s) != StageStandby {
				log.Info("standing by", "reason", err)
			}
			d.setState(s, StageStandby, nil)
			wait = d.a.ttl / 3
		} else {
			d.setState(s, StageFailed, err)
			log.Error("stage cannot start; trying again", "err", err, "in", pause.String())
			pause = min(2*pause, 30*time.Second)
		}
		if !sleepCtx(d.ctx, wait) {
			return
		}
	}
}

// ownSource runs source stage s whenever this worker holds its lease,
// until the run has finished or the version stops. Another worker stands
// by meanwhile, and takes the source over from its checkpoint when this
// one dies.
func (d *deployment) ownSource(s *pipeline.Stage) {
	log := d.r.log.With("stage", s.Name)
	a := d.a
	holder := schema.LeaseHolder{Worker: a.opts.ID, Host: a.info.Host, PID: a.info.PID}
	key := schema.CheckpointKey(d.r.p.Name, s.Name)
	for d.ctx.Err() == nil {
		ended, err := d.runEnded()
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
		if !sleepCtx(d.ctx, a.ttl/3) {
			return
		}
	}
}

// own runs source s under lease l: from its checkpoint until it ends,
// then until the run has finished; or until the lease is lost or the
// version stops. It reports whether it ended without a failure.
func (d *deployment) own(s *pipeline.Stage, l *lease.Lease, log *slog.Logger) bool {
	ctx, lose := context.WithCancel(d.ctx)
	var keeping sync.WaitGroup
	keeping.Go(func() {
		l.Keep(ctx, func() {
			log.Warn("source lease lost: stopping the source")
			lose()
		})
	})
	err := func() error {
		u, err := d.r.buildUnit(s, nil)
		if err != nil {
			return err
		}
		d.setState(s, StageRunning, nil)
		log.Info("source taken: reading from its checkpoint")
		err = u.source.loop(ctx)
		if err == nil {
			err = d.finish(ctx)
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.a.opts.StopTimeout)
		defer cancel()
		if cerr := closeUnits(cctx, []*unit{u}); cerr != nil && err == nil {
			err = cerr
		}
		return err
	}()
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

// finish waits, after a source ended, until every source of the run has
// ended and every stage has drained, and records the run as finished.
func (d *deployment) finish(ctx context.Context) error {
	p := d.r.p
	for _, s := range p.Stages {
		if s.Role != stages.RoleSource {
			continue
		}
		for {
			cp, found, err := schema.GetJSON[schema.Checkpoint](ctx, d.r.kv, schema.CheckpointKey(p.Name, s.Name))
			if err == nil && found && cp.Run == d.r.id && cp.Done {
				break
			}
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
		}
	}
	if err := d.r.waitDrained(ctx, p.Stages, d.inputs); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := putRun(ctx, d.r.kv, p.Name, schema.RunRecord{Run: d.r.id, State: schema.RunFinished}); err != nil {
		return err
	}
	d.r.log.Info("run finished", "run", d.r.id)
	return nil
}

// runEnded reports whether the run of this version has finished, or a
// newer run has started.
func (d *deployment) runEnded() (bool, error) {
	rec, _, err := schema.GetJSON[schema.RunRecord](d.ctx, d.r.kv, schema.RunKey(d.r.p.Name))
	if err != nil {
		return false, err
	}
	return rec.Run > d.r.id || rec.Run == d.r.id && rec.State == schema.RunFinished, nil
}

// report returns what the heartbeat says about this version.
func (d *deployment) report() WorkerPipeline {
	wp := WorkerPipeline{Name: d.d.Name, Version: d.d.Version, Run: d.d.Run}
	if d.err != nil {
		wp.Error = d.err.Error()
		return wp
	}
	if d.r == nil {
		return wp
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
		st.In = d.r.stats[s.Name].in.Load()
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
