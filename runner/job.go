package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/lease"
	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// Job is one run of a pipeline in this process: the run lifecycle that
// [Run] and the cluster's workers share. [Open] provisions the pipeline
// and begins, resumes or joins a run; [Job.Start] and [Job.RunSource] run
// its stages; [Job.WaitFinished] tells when the run has finished;
// [Job.Record] stores how it ended; [Job.Close] stops and closes what
// runs. A Job is safe for concurrent use.
type Job struct {
	r      *run
	local  []*pipeline.Stage
	inputs map[string][]input
	crew   *crew
	start  time.Time
	// begins tells that this process began or resumed the run, and so
	// records how it ends.
	begins bool

	mu     sync.Mutex
	units  []*unit
	closed bool
}

// Open provisions the streams and consumers of p on the server behind nc
// (idempotently) and opens a run of it in this process for the stages
// that opts.Stages names (all if none):
//   - with opts.Run set, it joins that run, begun elsewhere (a deploy);
//   - else a process that runs a source begins a run, or resumes the
//     latest one if it did not finish, or if it did and replayed dead
//     letters of it wait in the streams: then its sources have ended and
//     only the replays flow (unless opts.Fresh, which purges what the
//     streams hold, replays included);
//   - else it joins the latest run.
//
// Nothing runs until [Job.Start] or [Job.RunSource]; [Job.Close] must be
// called.
func Open(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline, opts Options) (*Job, error) {
	opts.setDefaults()
	j, err := open(ctx, nc, p, opts)
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	return j, nil
}

func open(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline, opts Options) (*Job, error) {
	r := &run{
		p:     p,
		nc:    nc,
		opts:  opts,
		log:   opts.Logger.With("pipeline", p.Name),
		stats: make(map[string]*stageStats, len(p.Stages)),
	}
	for _, s := range p.Stages {
		r.stats[s.Name] = new(stageStats)
	}
	local, err := localStages(p, opts.Stages)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	j := &Job{r: r, local: local}
	err = retry.WhilePlacing(ctx, r.log, func() error {
		if r.kv, err = stateBucket(ctx, js, p.Settings.Replicas); err != nil {
			return err
		}
		if readsPartitions(local) {
			if err := r.openLeases(ctx, js, opts.LeaseTTL); err != nil {
				return err
			}
		}
		j.inputs, err = provision(ctx, js, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Only a process that runs a source begins a run: the run number is
	// in the IDs of what sources publish.
	runsSource := slices.ContainsFunc(local, func(s *pipeline.Stage) bool { return s.Role == stages.RoleSource })
	switch {
	case opts.Run != 0:
		r.id, r.joined = opts.Run, true
	case runsSource:
		if opts.Fresh {
			pending, err := replaysPending(ctx, js, p)
			if err != nil {
				return nil, err
			}
			if pending {
				r.log.Warn("a fresh run discards the replayed dead letters that wait in the stage streams: they will not be processed")
			}
			if err := purgeStreams(ctx, js, p); err != nil {
				return nil, err
			}
		}
		var b begun
		b, err = beginRun(ctx, r.kv, p.Name, opts.Fresh, func() (bool, error) { return replaysPending(ctx, js, p) })
		if err == nil && !b.resumed {
			err = forgetIntake(ctx, js, p.Name)
		}
		r.id, r.resumed, r.replay = b.id, b.resumed, b.replay
		j.begins = true
	default:
		r.id, err = currentRun(ctx, r.kv, p.Name)
		r.joined = true
	}
	if err != nil {
		return nil, err
	}
	j.crew = newCrew(ctx, opts.StopTimeout)
	j.start = time.Now()
	return j, nil
}

// ID returns the run's number, 1 for the first run of the pipeline.
func (j *Job) ID() uint64 { return j.r.id }

// Start builds transform or sink stage s and starts its workers on its
// inputs. An error wrapping [stages.ErrBusy] means the stage cannot run
// here now (another process writes its file) and may be started later;
// [ErrStopped], that the job is closing.
func (j *Job) Start(s *pipeline.Stage) error {
	u, err := j.r.buildUnit(s, j.inputs[s.Name])
	if err != nil {
		return err
	}
	if err := j.keep(u); err != nil {
		return err
	}
	return j.crew.start(u)
}

// keep adds u to the units the job closes, unless the job is closing.
func (j *Job) keep(u *unit) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		cctx, cancel := context.WithTimeout(context.Background(), j.r.opts.StopTimeout)
		defer cancel()
		_ = closeUnits(cctx, []*unit{u})
		return ErrStopped
	}
	j.units = append(j.units, u)
	return nil
}

// RunSource builds source stage s and runs it from its checkpoint until
// it ends (nil), ctx ends (ctx.Err()) or it fails, then closes it.
// Everything it read before it returns nil has been stored in its stream.
func (j *Job) RunSource(ctx context.Context, s *pipeline.Stage) error {
	u, err := j.r.buildUnit(s, nil)
	if err != nil {
		return err
	}
	err = u.source.loop(ctx)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.r.opts.StopTimeout)
	defer cancel()
	return errors.Join(err, closeUnits(cctx, []*unit{u}))
}

// WaitFinished returns once the run has finished within scope (nil
// means every stage of the pipeline): every source among them has ended,
// as its checkpoint for this run says, and then every stage among them
// has drained. This is the one test of a run's end.
func (j *Job) WaitFinished(ctx context.Context, scope []*pipeline.Stage) error {
	if scope == nil {
		scope = j.r.p.Stages
	}
	for _, s := range scope {
		if s.Role == stages.RoleSource {
			if err := j.waitSourceEnded(ctx, s); err != nil {
				return err
			}
		}
	}
	return j.r.waitDrained(ctx, scope, j.inputs)
}

// checkpointPoll is the pace of reading a source's checkpoint while
// waiting for its end: fast at first, so that a small job ends at once.
var checkpointPoll = retry.Backoff{Min: 5 * time.Millisecond, Max: time.Second}

// waitSourceEnded reads the checkpoint of source s until it says the
// source has ended in this run. A read that fails (a server away, a
// leader being elected) is tried again: the source may be owned by
// another process, and this one waits for it as long as ctx lasts.
func (j *Job) waitSourceEnded(ctx context.Context, s *pipeline.Stage) error {
	key := schema.CheckpointKey(j.r.p.Name, s.Name)
	for polls := 0; ; polls++ {
		cp, found, err := schema.GetJSON[schema.Checkpoint](ctx, j.r.kv, key)
		if err == nil && found && cp.Run == j.r.id && cp.Done {
			return nil
		}
		if !retry.Sleep(ctx, checkpointPoll.Delay(polls)) {
			return ctx.Err()
		}
	}
}

// Err returns what failed the run in this process, nil if nothing did:
// a stage held by a destination that was down longer than its
// max_outage (wrapping [ErrMaxOutage]). The stage's workers have stopped
// then; what they held goes back to the server when the job closes.
func (j *Job) Err() error { return j.r.failure() }

// Ended reports whether the run has finished, or a newer run has begun.
func (j *Job) Ended(ctx context.Context) (bool, error) {
	rec, _, err := schema.GetJSON[schema.RunRecord](ctx, j.r.kv, schema.RunKey(j.r.p.Name))
	if err != nil {
		return false, err
	}
	return rec.Run > j.r.id || rec.Run == j.r.id && rec.State == schema.RunFinished, nil
}

// Record stores how the run ended: [schema.RunFinished] or
// [schema.RunInterrupted].
func (j *Job) Record(ctx context.Context, state string) error {
	return putRun(ctx, j.r.kv, j.r.p.Name, schema.RunRecord{Run: j.r.id, State: state})
}

// Stage returns what stage name did in this process so far.
func (j *Job) Stage(name string) StageSummary {
	s := j.r.p.Stage(name)
	if s == nil {
		return StageSummary{Name: name}
	}
	return j.r.stats[name].summary(s, time.Since(j.start))
}

// Close stops the job: its workers settle the batches in hand (a
// transform finishes the record it is on and gives back the rest), then every stage started is closed
// (sinks last, flushing their output), and the connection is flushed so
// that nothing of this run lands after Close returns. It returns the
// first error of closing. Calls after the first do nothing.
func (j *Job) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	j.crew.stop()
	ctx, cancel := context.WithTimeout(context.Background(), j.r.opts.StopTimeout)
	defer cancel()
	err := closeUnits(ctx, j.units)
	j.units = nil
	// Publishes the stop cut short are on their way: let them be stored
	// (or fail) now, not after Close returned (a --fresh run started next
	// would take them in).
	j.r.publishesSettled(ctx)
	_ = j.r.nc.FlushTimeout(j.r.opts.StopTimeout)
	return err
}

// openLeases opens the leases bucket, creating it with entries that live
// ttl if needed, for the stages that own partitions.
func (r *run) openLeases(ctx context.Context, js jetstream.JetStream, ttl time.Duration) error {
	if ttl == 0 {
		ttl = lease.DefaultTTL
	}
	kv, err := schema.EnsureBucket(ctx, js, schema.Bucket(schema.LeasesBucket, r.p.Settings.Replicas, ttl))
	if err != nil {
		return err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return err
	}
	r.leases, r.leaseTTL, r.member = kv, st.TTL(), memberID(r.opts.WorkerID)
	return nil
}

// Pipeline returns the name of the job's pipeline.
func (j *Job) Pipeline() string { return j.r.p.Name }

// Stages returns the names of the stages this process runs, in the order
// of the pipeline file.
func (j *Job) Stages() []string {
	names := make([]string, len(j.local))
	for i, s := range j.local {
		names[i] = s.Name
	}
	return names
}

// Backlog is what waits for a stage on its inputs, summed over its
// durable consumers, as the server tells it.
type Backlog struct {
	Pending    uint64 // messages not yet delivered to any worker of the stage
	AckPending uint64 // messages delivered and not yet acknowledged
}

// Backlog asks the server for the consumer info of every input of stage
// name and returns their sum; ok is false for a stage without inputs (a
// source) or not run by this process. It makes one request per input:
// bound it with ctx.
func (j *Job) Backlog(ctx context.Context, name string) (b Backlog, ok bool, err error) {
	ins := j.inputs[name]
	if len(ins) == 0 || !slices.ContainsFunc(j.local, func(s *pipeline.Stage) bool { return s.Name == name }) {
		return Backlog{}, false, nil
	}
	for _, in := range ins {
		info, err := in.consumer.Info(ctx)
		if err != nil {
			return Backlog{}, false, fmt.Errorf("stage %q: consumer on %s: %w", name, in.stream, err)
		}
		b.Pending += info.NumPending
		b.AckPending += uint64(info.NumAckPending)
	}
	return b, true, nil
}

// From returns what stage name reads: the outputs of the stages before it
// ([pipeline.Input]s, a route named where it reads one), in the order of
// the pipeline file; nil for a source or a stage the pipeline does not
// have. The slice is the caller's.
func (j *Job) From(name string) []pipeline.Input {
	s := j.r.p.Stage(name)
	if s == nil {
		return nil
	}
	return slices.Clone(s.From)
}
