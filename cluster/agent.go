package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluicehq/sluice/internal/lease"
	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// WorkerOptions configure [RunWorker]. The zero value is usable.
type WorkerOptions struct {
	// ID names the worker among the cluster's workers; it must be stable
	// across restarts (a file sink puts it in a path with {worker}) and
	// unique among the live workers. Empty means the host name.
	ID string
	// Stages limits the worker to the stages that match one of these
	// patterns (path.Match syntax), each matched against "stage" and
	// "pipeline.stage". Empty means every stage.
	Stages []string
	// LeaseTTL is how long the worker's heartbeat and source leases live
	// without renewal, when this worker creates their buckets; an existing
	// bucket keeps its own. 0 means lease.DefaultTTL.
	LeaseTTL time.Duration
	// Policy restricts what the deployed pipelines may do on this worker:
	// the variables they read, exec, plugins and the directory their
	// files stay in (see [pipeline.Policy]). The zero value is the safe
	// default: variables beginning with SLUICE_VAR_, no exec, no plugins,
	// files under the working directory. A pipeline it refuses does not
	// start; the worker reports why in its heartbeat, which status shows,
	// and runs its other pipelines.
	Policy pipeline.Policy
	// Registry, Logger, Stdin, Stdout and StopTimeout are as in Options.
	Registry    *stages.Registry
	Logger      *slog.Logger
	Stdin       io.Reader
	Stdout      io.Writer
	StopTimeout time.Duration
	// Observer is given to the runs of the deployed pipelines (see
	// runner.Options): nil observes nothing.
	Observer runner.Observer
	// Started, if set, is called with the job of each version of a
	// pipeline this worker runs, once its stages are launched; Stopped,
	// with the pipeline's name, once that version has stopped here (a new
	// version, an undeploy, the worker's stop). A version that could not
	// start is not told. Both are called from the worker's goroutines and
	// must not block. For a monitor: /metrics, /readyz.
	Started func(*runner.Job)
	Stopped func(pipeline string)
	// Tracer, if set, traces the records of every pipeline the worker
	// runs, as [runner.Options.Tracer] does; nil is tracing off.
	Tracer trace.TracerProvider
}

// WorkerInfo is what a worker's heartbeat in the sluice_workers bucket
// says about it.
type WorkerInfo = schema.WorkerInfo

// WorkerPipeline is a pipeline a worker runs.
type WorkerPipeline = schema.WorkerPipeline

// WorkerStage is a stage of a pipeline a worker runs.
type WorkerStage = schema.WorkerStage

// States of a stage in a worker.
const (
	StageRunning = schema.StageRunning // processing, or (a source) reading as the owner
	StageStandby = schema.StageStandby // waiting to take over: a source another worker owns, a file another sink writes
	StageDone    = schema.StageDone    // a source whose run has finished
	StageFailed  = schema.StageFailed  // could not start; the worker tries again
	StageHeld    = schema.StageHeld    // running, held by a destination that is down
)

// agent is a running `sluice worker`.
type agent struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts WorkerOptions
	log  *slog.Logger
	info WorkerInfo

	pipes, workers, leases, state jetstream.KeyValue
	ttl                           time.Duration

	mu   sync.Mutex
	deps map[string]*deployment
}

// RunWorker joins the cluster behind nc as a worker: it registers a
// heartbeat in sluice_workers, runs every deployed pipeline (the stages
// that opts.Stages match) and follows sluice_pipelines, switching to a new
// version or stopping an undeployed pipeline as they happen, until ctx is
// done. Then it stops cleanly: sources store their checkpoints and release
// their leases, workers finish their batches.
func RunWorker(ctx context.Context, nc *nats.Conn, opts WorkerOptions) error {
	if opts.ID == "" {
		opts.ID = runner.DefaultWorkerID()
	}
	if !validWorkerID(opts.ID) {
		return fmt.Errorf("%w: worker id %q: use letters, digits, '-' and '_'", ErrInvalidOption, opts.ID)
	}
	for _, pat := range opts.Stages {
		if _, err := path.Match(pat, ""); err != nil {
			return fmt.Errorf("%w: stage pattern %q: %w", ErrInvalidOption, pat, err)
		}
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = lease.DefaultTTL
	}
	if opts.LeaseTTL < time.Second {
		return fmt.Errorf("%w: lease TTL %s: at least 1s", ErrInvalidOption, opts.LeaseTTL)
	}
	opts.Policy.Lexical = false // the worker's own file system: check symbolic links too
	if err := opts.Policy.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	if opts.Policy.DataDir == "" {
		opts.Policy.DataDir = "."
	}
	dataDir, err := filepath.Abs(opts.Policy.DataDir)
	if err != nil {
		return fmt.Errorf("%w: data directory: %w", ErrInvalidOption, err)
	}
	opts.Policy.DataDir = dataDir // a change of working directory later changes nothing
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	opts.Policy.AllowEnv = slices.Clone(opts.Policy.AllowEnv)
	a := &agent{
		nc:   nc,
		js:   js,
		opts: opts,
		log:  opts.Logger.With("worker", opts.ID),
		deps: make(map[string]*deployment),
		info: WorkerInfo{ID: opts.ID, Host: runner.DefaultWorkerID(), PID: os.Getpid(), Started: time.Now().UTC(), Stages: opts.Stages},
	}
	if err := a.openBuckets(ctx, 1); err != nil {
		return err
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	beatCtx, stopBeating := context.WithCancel(context.WithoutCancel(ctx))
	var beating sync.WaitGroup
	beating.Go(func() { a.heartbeat(beatCtx) })

	err = a.follow(ctx)

	a.mu.Lock()
	deps := a.deps
	a.deps = nil
	a.mu.Unlock()
	var stopping sync.WaitGroup
	for _, d := range deps {
		stopping.Go(d.stop)
	}
	stopping.Wait()
	stopBeating()
	beating.Wait()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if derr := a.workers.Delete(dctx, a.opts.ID); derr != nil {
		a.log.Warn("heartbeat not removed", "err", derr)
	}
	a.log.Info("worker stopped")
	return err
}

// validWorkerID reports whether id can be a KV key and a file name part.
func validWorkerID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// openBuckets opens or creates the control-plane buckets with at least
// replicas copies.
func (a *agent) openBuckets(ctx context.Context, replicas int) error {
	return retry.WhilePlacing(ctx, a.log, func() error {
		var err error
		if a.pipes, err = schema.EnsureBucket(ctx, a.js, schema.Bucket(schema.PipelinesBucket, replicas, 0)); err != nil {
			return err
		}
		if a.workers, err = schema.EnsureBucket(ctx, a.js, schema.Bucket(schema.WorkersBucket, replicas, a.opts.LeaseTTL)); err != nil {
			return err
		}
		if a.leases, err = schema.EnsureBucket(ctx, a.js, schema.Bucket(schema.LeasesBucket, replicas, a.opts.LeaseTTL)); err != nil {
			return err
		}
		if a.state, err = schema.EnsureBucket(ctx, a.js, schema.Bucket(schema.StateBucket, replicas, 0)); err != nil {
			return err
		}
		st, err := a.leases.Status(ctx)
		if err != nil {
			return err
		}
		a.ttl = st.TTL()
		return nil
	})
}

// register creates the worker's heartbeat entry. An entry of the same id
// is waited out for up to two lease times (a worker killed and started
// again finds its old entry); one still renewed then belongs to another
// live worker.
func (a *agent) register(ctx context.Context) error {
	deadline := time.Now().Add(2 * a.ttl)
	for {
		b, err := json.Marshal(a.snapshot())
		if err != nil {
			return err
		}
		_, err = a.workers.Create(ctx, a.opts.ID, b)
		if err == nil {
			a.log.Info("worker joined", "host", a.info.Host, "lease_ttl", a.ttl.String())
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("register worker %s: %w", a.opts.ID, err)
		}
		if time.Now().After(deadline) {
			other, _, _ := schema.GetJSON[WorkerInfo](ctx, a.workers, a.opts.ID)
			return fmt.Errorf("%w: worker id %q is taken by a live worker on host %s (pid %d): give each worker its own --id",
				ErrInvalidOption, a.opts.ID, other.Host, other.PID)
		}
		a.log.Info("waiting for the previous worker of this id to expire", "id", a.opts.ID)
		if !retry.Sleep(ctx, a.ttl/4) {
			return ctx.Err()
		}
	}
}

// heartbeat renews the worker's entry with what it runs every third of
// the lease time, until ctx is done.
func (a *agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := json.Marshal(a.snapshot())
		if err != nil {
			continue
		}
		// A plain put: the entry may have expired while the server was
		// away, and then it must come back.
		if _, err := a.workers.Put(ctx, a.opts.ID, b); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat not stored", "err", err)
		}
	}
}

// snapshot returns the worker's heartbeat now.
func (a *agent) snapshot() WorkerInfo {
	info := a.info
	info.Seen = time.Now().UTC()
	a.mu.Lock()
	deps := make([]*deployment, 0, len(a.deps))
	for _, d := range a.deps {
		deps = append(deps, d)
	}
	a.mu.Unlock()
	for _, d := range deps {
		info.Pipelines = append(info.Pipelines, d.report())
	}
	slices.SortFunc(info.Pipelines, func(x, y WorkerPipeline) int { return strings.Compare(x.Name, y.Name) })
	return info
}

// follow watches sluice_pipelines and reconciles: every deployed pipeline
// runs at its latest version. It returns when ctx is done.
func (a *agent) follow(ctx context.Context) error {
	w, err := a.pipes.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", schema.PipelinesBucket, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return nil
			}
			if e == nil {
				a.log.Info("following deployments", "pipelines", len(a.deps))
				continue
			}
			a.reconcile(ctx, e)
		}
	}
}

// reconcile applies one change of sluice_pipelines.
func (a *agent) reconcile(ctx context.Context, e jetstream.KeyValueEntry) {
	name := e.Key()
	a.mu.Lock()
	old := a.deps[name]
	a.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		if old != nil {
			a.log.Info("pipeline undeployed: stopping it", "pipeline", name)
			a.remove(name, old)
		}
		return
	}
	d, err := decodeDeployment(e)
	if err != nil {
		a.log.Error("deployment unreadable", "pipeline", name, "err", err)
		return
	}
	if old != nil {
		if old.d.Revision == d.Revision {
			return
		}
		a.log.Info("new version: switching", "pipeline", name, "from", old.d.Version, "to", d.Version)
		a.remove(name, old)
	}
	dep := a.start(ctx, d)
	a.mu.Lock()
	a.deps[name] = dep
	a.mu.Unlock()
}

func (a *agent) remove(name string, d *deployment) {
	d.stop()
	a.mu.Lock()
	delete(a.deps, name)
	a.mu.Unlock()
}

// matches reports whether the worker runs stage s of pipeline p.
func (a *agent) matches(p, s string) bool {
	if len(a.opts.Stages) == 0 {
		return true
	}
	for _, pat := range a.opts.Stages {
		if ok, _ := path.Match(pat, s); ok {
			return true
		}
		if ok, _ := path.Match(pat, p+"."+s); ok {
			return true
		}
	}
	return false
}
