package runner

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// Options configure a run. The zero value is usable.
type Options struct {
	// Registry builds the stages; nil means stages.Default. It must be the
	// registry the pipeline was validated against. stages.Default starts
	// empty: the program registers the types it wants in it, such as
	// builtin.Register(stages.Default) for every built-in type (package
	// stages/builtin).
	Registry *stages.Registry
	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
	// Stdin and Stdout are given to the stages; nil means os.Stdin and
	// os.Stdout.
	Stdin  io.Reader
	Stdout io.Writer
	// StopTimeout bounds the clean stop after ctx is done: finishing the
	// batches in hand, flushing sinks. 0 means 30s.
	StopTimeout time.Duration
	// Stages, if not empty, limits this process to the named stages; the
	// others run in other processes, or not at all. A process that runs no
	// source ends once its stages have drained what their streams hold, and
	// does not start a new run.
	Stages []string
	// Fresh starts a new run even when the latest run of the pipeline was
	// interrupted, discarding the messages it left in the stage streams.
	// Without it, such a run is resumed: sources continue from their
	// checkpoints and the stages process what the streams hold.
	Fresh bool
	// WorkerID names this process among those that run the pipeline; a
	// file sink puts it in a path with {worker}. Empty means the host name.
	WorkerID string
}

func (o *Options) setDefaults() {
	if o.Registry == nil {
		o.Registry = stages.Default
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 30 * time.Second
	}
	if o.WorkerID == "" {
		o.WorkerID = hostName()
	}
}

// StageSummary counts what one stage did in this process during a run.
type StageSummary struct {
	Name        string
	Role        stages.Role
	Type        string
	In          uint64  // messages received (a source: records read)
	Out         uint64  // messages published (a sink: messages written)
	Filtered    uint64  // inputs that produced no output
	Errors      uint64  // failed attempts that were retried
	DeadLetters uint64  // messages sent to the dead-letter stream
	Dropped     uint64  // failed messages acknowledged without output (on_error: drop)
	Rate        float64 // In per second of the run
}

// Summary is the result of a run.
type Summary struct {
	Pipeline    string
	Run         uint64 // the run number, 1 for the first run of a pipeline
	Resumed     bool   // this process continued run Run, which had been interrupted
	Elapsed     time.Duration
	Interrupted bool // the run was stopped before it drained
	Stages      []StageSummary
}

// run is the state of one pipeline run in this process.
type run struct {
	p  *pipeline.Pipeline
	nc *nats.Conn
	kv jetstream.KeyValue // the state bucket
	id uint64
	// resumed tells that the run continues one that was interrupted;
	// joined, that another process started it.
	resumed, joined bool
	opts            Options
	log             *slog.Logger
	stats           map[string]*stageStats

	// For stages that read partitioned inputs: the leases bucket, its
	// TTL, and the name of this process among a stage's members.
	leases   jetstream.KeyValue
	leaseTTL time.Duration
	member   string

	units []*unit
}

// Run provisions the streams and consumers of p on the server behind nc and
// runs its stages until every bounded source has finished and every stage
// has drained, or until ctx is done; then it stops cleanly (the summary
// says Interrupted). It returns the summary of what this process did.
// The connection stays open; the caller closes it.
func Run(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline, opts Options) (*Summary, error) {
	opts.setDefaults()
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
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	var kv jetstream.KeyValue
	var inputs map[string][]input
	err = whilePlacing(ctx, r.log, func() error {
		if kv, err = stateBucket(ctx, js, p.Settings.Replicas); err != nil {
			return err
		}
		if readsPartitions(local) {
			if err := r.openLeases(ctx, js, DefaultLeaseTTL); err != nil {
				return err
			}
		}
		inputs, err = provision(ctx, js, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	// Only a process that runs a source starts a run: the run number is
	// in the IDs of what sources publish.
	startsRun := slices.ContainsFunc(local, func(s *pipeline.Stage) bool { return s.Role == stages.RoleSource })
	if startsRun && opts.Fresh {
		err = purgeStreams(ctx, js, p)
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	r.kv = kv
	if startsRun {
		r.id, r.resumed, err = beginRun(ctx, kv, p.Name, opts.Fresh)
	} else {
		r.id, err = currentRun(ctx, kv, p.Name)
		r.joined = true
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	if err := r.build(local, inputs); err != nil {
		r.closeStages()
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	if r.resumed {
		r.log.Info("run resumed", "run", r.id, "stages", len(p.Stages))
	} else {
		r.log.Info("run started", "run", r.id, "stages", len(p.Stages))
	}

	start := time.Now()
	drained, runErr := r.execute(ctx, local, inputs)
	elapsed := time.Since(start)
	if err := r.closeStages(); err != nil && runErr == nil {
		runErr = err
	}
	// Publishes the stop cut short are on their way: let the server have
	// them now, so that nothing of this run lands after Run returns (a
	// --fresh run started next on this connection would take them in).
	_ = nc.FlushTimeout(opts.StopTimeout)

	state := stateFinished
	if runErr != nil || !drained {
		state = stateInterrupted
	}
	if startsRun {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.StopTimeout)
		defer cancel()
		if err := putRun(stopCtx, kv, p.Name, runRecord{Run: r.id, State: state}); err != nil && runErr == nil {
			runErr = err
		}
	}

	sum := &Summary{Pipeline: p.Name, Run: r.id, Resumed: r.resumed, Elapsed: elapsed, Interrupted: !drained}
	for _, s := range local {
		sum.Stages = append(sum.Stages, r.stats[s.Name].summary(s, elapsed))
	}
	r.log.Info("run "+state, "run", r.id, "elapsed", elapsed.Round(time.Millisecond).String())
	if runErr != nil {
		return sum, fmt.Errorf("pipeline %q: %w", p.Name, runErr)
	}
	return sum, nil
}

// Provision creates or updates the streams and durable consumers of p on
// the server behind nc, as [Run] does before it starts. It is idempotent,
// so that any number of processes may provision the same pipeline.
func Provision(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	if _, err := provision(ctx, js, p); err != nil {
		return fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	return nil
}

// readsPartitions reports whether one of stages reads a partitioned stage.
func readsPartitions(stages []*pipeline.Stage) bool {
	return slices.ContainsFunc(stages, func(s *pipeline.Stage) bool { return s.InputPartitions > 0 })
}

// openLeases opens the leases bucket, creating it with entries that live
// ttl if needed, for the stages that own partitions.
func (r *run) openLeases(ctx context.Context, js jetstream.JetStream, ttl time.Duration) error {
	kv, err := ensureBucket(ctx, js, controlBucket(pipeline.LeasesBucket, r.p.Settings.Replicas, ttl))
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

// localStages returns the stages of p that this process runs: the named
// ones, or every stage when names is empty.
func localStages(p *pipeline.Pipeline, names []string) ([]*pipeline.Stage, error) {
	if len(names) == 0 {
		return p.Stages, nil
	}
	for _, name := range names {
		if p.Stage(name) == nil {
			return nil, fmt.Errorf("%w: no stage %q to run", ErrInvalidOption, name)
		}
	}
	var out []*pipeline.Stage
	for _, s := range p.Stages {
		if slices.Contains(names, s.Name) {
			out = append(out, s)
		}
	}
	return out, nil
}

// build constructs the instances of the local stages.
func (r *run) build(local []*pipeline.Stage, inputs map[string][]input) error {
	for _, s := range local {
		u, err := r.buildUnit(s, inputs[s.Name])
		if err != nil {
			return err
		}
		r.units = append(r.units, u)
	}
	return nil
}

// execute runs the built stages. It returns whether the pipeline drained
// (every bounded source finished and every stage processed everything),
// and the first error that stopped it.
func (r *run) execute(ctx context.Context, local []*pipeline.Stage, inputs map[string][]input) (drained bool, err error) {
	// A failure anywhere cancels runCtx: sources stop and the drain wait
	// ends. Workers stop only when told, after the drain, a signal or a
	// failure, so that they finish what the sources published.
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	var failure error
	var failOnce sync.Once
	fail := func(err error) {
		failOnce.Do(func() { failure = err; cancelRun(err) })
	}

	c := newCrew(ctx, r.opts.StopTimeout)
	defer c.stop()
	for _, u := range r.units {
		if u.feed == nil {
			continue
		}
		if err := c.start(u); err != nil {
			fail(err)
			break
		}
	}

	var sources sync.WaitGroup
	for _, u := range r.units {
		if u.source == nil {
			continue
		}
		sources.Go(func() {
			if err := u.source.loop(runCtx); err != nil && runCtx.Err() == nil {
				fail(err)
			}
		})
	}
	sources.Wait()
	if runCtx.Err() == nil {
		drained = r.waitDrained(runCtx, local, inputs) == nil
	}
	c.stop()
	failOnce.Do(func() {}) // no failure can be recorded from here on
	if failure != nil {
		return false, failure
	}
	return drained, nil
}

// closeStages closes every stage instance built and returns the first
// error.
func (r *run) closeStages() error {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.StopTimeout)
	defer cancel()
	err := closeUnits(ctx, r.units)
	r.units = nil
	return err
}
