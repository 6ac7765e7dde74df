package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
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
	// StopTimeout bounds the clean stop after ctx is done: settling the
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
	// Run, if not 0, makes [Open] join that run, begun elsewhere (the
	// control plane's deploy), instead of beginning or resuming one.
	Run uint64
	// LeaseTTL is how long the leases of partitions live without renewal
	// when this process creates their bucket; an existing bucket keeps its
	// own. 0 means 10s.
	LeaseTTL time.Duration
	// Started, if set, is called by [Run] once the stages of this process
	// are running (workers started, sources launched), with the run's
	// [Job], through which a monitor reads what they do while they run
	// ([Job.Stage], [Job.Backlog]). It is called at most once, from the
	// goroutine of Run, and must not block. The Job is closed when Run
	// returns.
	Started func(*Job)
	// Observer, if set, is told per batch what the stages of this
	// process do (see [Observer]); nil costs nothing.
	Observer Observer
	// Tracer, if set, makes a span per record in each stage and carries
	// the trace context from stage to stage in the traceparent header
	// (see package internal/tracing, which makes one that exports over
	// OTLP). Nil is tracing off: no span, no header, no cost.
	Tracer trace.TracerProvider
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
		o.WorkerID = DefaultWorkerID()
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
	// Held is how long the stage was held by a destination that was down
	// (errors marked stages.ErrOutage), in Outages outages; 0 if never.
	Held    time.Duration
	Outages uint64
	// HeldSince is when the stage became held, if it is held now (else
	// zero), and HeldBy the destination's error that holds it, with the
	// user names and passwords of URLs removed.
	HeldSince time.Time
	HeldBy    string
}

// Summary is the result of a run.
type Summary struct {
	Pipeline    string
	Run         uint64 // the run number, 1 for the first run of a pipeline
	Resumed     bool   // this process continued run Run, which had been interrupted (or Replay)
	Replay      bool   // run Run had finished: it was resumed to process its replayed dead letters alone
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
	// resumed tells that the run continues one that was interrupted, or
	// one that had finished, for its replayed dead letters;
	// joined, that another process started it.
	resumed, joined bool
	opts            Options
	log             *slog.Logger
	stats           map[string]*stageStats
	ownCounts       sync.Map // the counts keys of this process's workers (see counter)
	// replay tells that the run had finished and is resumed for its
	// replayed dead letters alone.
	replay bool

	// For stages that read partitioned inputs: the leases bucket, its
	// TTL, and the name of this process among a stage's members.
	leases   jetstream.KeyValue
	leaseTTL time.Duration
	member   string

	// The JetStream contexts that sources and workers publish with, so
	// that a stop can wait for what they have in flight.
	pubMu sync.Mutex
	pubs  []jetstream.JetStream

	// What failed the run in this process (a stage held past its
	// max_outage), and whom to tell: Job.execute, which stops the run.
	failMu sync.Mutex
	failed error
	onFail func(error)
}

// fail records err as what failed the run, unless something did before,
// and tells onFail. Without onFail (a cluster worker), the stage's
// workers stop and the heartbeat reports the error.
func (r *run) fail(err error) {
	r.failMu.Lock()
	if r.failed != nil {
		r.failMu.Unlock()
		return
	}
	r.failed = err
	tell := r.onFail
	r.failMu.Unlock()
	r.log.Error("run failed", "err", err)
	if tell != nil {
		tell(err)
	}
}

// failure returns what failed the run, nil if nothing did.
func (r *run) failure() error {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	return r.failed
}

// Run provisions the streams and consumers of p on the server behind nc and
// runs its stages until every bounded source has finished and every stage
// has drained, or until ctx is done; then it stops cleanly (the summary
// says Interrupted). It returns the summary of what this process did.
// The connection stays open; the caller closes it.
func Run(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline, opts Options) (*Summary, error) {
	j, err := Open(ctx, nc, p, opts)
	if err != nil {
		return nil, err
	}
	r := j.r
	if err := j.build(); err != nil {
		_ = j.Close()
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	switch {
	case r.replay:
		r.log.Info("finished run resumed for its replayed dead letters", "run", r.id, "stages", len(p.Stages))
	case r.resumed:
		r.log.Info("run resumed", "run", r.id, "stages", len(p.Stages))
	default:
		r.log.Info("run started", "run", r.id, "stages", len(p.Stages))
	}

	start := time.Now()
	drained, runErr := j.execute(ctx)
	elapsed := time.Since(start)
	if err := j.Close(); err != nil && runErr == nil {
		runErr = err
	}

	state := schema.RunFinished
	if runErr != nil || !drained {
		state = schema.RunInterrupted
	}
	if j.begins {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.StopTimeout)
		defer cancel()
		if err := j.Record(stopCtx, state); err != nil && runErr == nil {
			runErr = err
		}
	}

	sum := &Summary{Pipeline: p.Name, Run: r.id, Resumed: r.resumed, Replay: r.replay, Elapsed: elapsed, Interrupted: !drained}
	sumCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.StopTimeout)
	defer cancel()
	for _, s := range j.local {
		st := r.stats[s.Name].summary(s, elapsed)
		if s.Role != stages.RoleSource && !r.replay {
			// The whole run: what the processes before this one, or
			// beside it, counted too. A source's checkpoint has its counts.
			if err := r.runCounts(sumCtx, s.Name, &st); err != nil {
				r.log.Warn("the counts of other processes are left out of the summary", "stage", s.Name, "err", err)
			}
		}
		sum.Stages = append(sum.Stages, st)
	}
	r.log.Info("run "+state, "run", r.id, "elapsed", elapsed.Round(time.Millisecond).String())
	if runErr != nil {
		return sum, fmt.Errorf("pipeline %q: %w", p.Name, runErr)
	}
	return sum, nil
}

// Provision creates or updates the streams and durable consumers of p on
// the server behind nc, as [Run] does before it starts. It is idempotent,
// so that any number of processes may provision the same pipeline, and
// waits out a cluster that is settling (just started, a leader being
// elected).
func Provision(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline) error {
	return provisionOn(ctx, nc, p, false)
}

// Reprovision provisions p as [Provision] does, and then deletes the
// durable consumers on the streams of p that no stage of p reads any more
// (a stage removed or rewired by a new version of the pipeline): with
// interest retention, such a consumer would keep every message of its
// stream and, once max_buffer is reached, stall the stages before it.
func Reprovision(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline) error {
	return provisionOn(ctx, nc, p, true)
}

// provisionOn provisions p on the server behind nc and, if prune, deletes
// the consumers no stage reads.
func provisionOn(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline, prune bool) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	err = retry.WhilePlacing(ctx, nil, func() error {
		inputs, err := provision(ctx, js, p)
		if err != nil || !prune {
			return err
		}
		return pruneConsumers(ctx, js, p, inputs)
	})
	if err != nil {
		return fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	return nil
}

// pruneConsumers deletes the durable consumers on the streams of p that
// no stage of p reads any more.
func pruneConsumers(ctx context.Context, js jetstream.JetStream, p *pipeline.Pipeline, inputs map[string][]input) error {
	want := make(map[string]bool) // "stream/consumer"
	for _, ins := range inputs {
		for _, in := range ins {
			want[in.stream+"/"+in.consumer.CachedInfo().Name] = true
		}
	}
	lister := js.StreamNames(ctx, jetstream.WithStreamListSubject(schema.Subject(p.Name, ">")))
	var streams []string
	for name := range lister.Name() {
		if name != schema.DLQStreamName(p.Name) {
			streams = append(streams, name)
		}
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	for _, stream := range streams {
		str, err := js.Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
		names := str.ConsumerNames(ctx)
		var stale []string
		for c := range names.Name() {
			if !want[stream+"/"+c] {
				stale = append(stale, c)
			}
		}
		if err := names.Err(); err != nil {
			return fmt.Errorf("stream %s: list consumers: %w", stream, err)
		}
		for _, c := range stale {
			if err := str.DeleteConsumer(ctx, c); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return fmt.Errorf("stream %s: delete consumer %s no stage reads: %w", stream, c, err)
			}
		}
	}
	return nil
}

// readsPartitions reports whether one of stages reads a partitioned stage.
func readsPartitions(stages []*pipeline.Stage) bool {
	return slices.ContainsFunc(stages, func(s *pipeline.Stage) bool { return s.InputPartitions > 0 })
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

// build constructs the instances of the local stages, all before any
// runs, so that a stage that cannot be built stops the run before it
// starts.
func (j *Job) build() error {
	for _, s := range j.local {
		u, err := j.r.buildUnit(s, j.inputs[s.Name])
		if err != nil {
			return err
		}
		if err := j.keep(u); err != nil {
			return err
		}
	}
	return j.fusedUnits()
}

// execute runs the built stages. It returns whether the pipeline drained
// (every bounded source finished and every stage processed everything),
// and the first error that stopped it.
func (j *Job) execute(ctx context.Context) (drained bool, err error) {
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
	j.r.failMu.Lock()
	j.r.onFail = fail
	j.r.failMu.Unlock()

	for _, u := range j.units {
		if u.feed == nil {
			continue
		}
		if err := j.crew.start(u); err != nil {
			fail(err)
			break
		}
	}

	var sources sync.WaitGroup
	for _, u := range j.units {
		if u.source == nil {
			continue
		}
		sources.Go(func() {
			if err := u.source.loop(runCtx); err != nil && runCtx.Err() == nil {
				fail(err)
			}
		})
	}
	if started := j.r.opts.Started; started != nil && runCtx.Err() == nil {
		started(j)
	}
	sources.Wait()
	if runCtx.Err() == nil {
		drained = j.WaitFinished(runCtx, j.local) == nil
	}
	j.crew.stop()
	failOnce.Do(func() {}) // no failure can be recorded from here on
	if failure != nil {
		return false, failure
	}
	return drained, nil
}
