package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/state"
)

// ErrNotDeployed is returned for a pipeline that is not deployed.
var ErrNotDeployed = errors.New("pipeline not deployed")

// Deployment is a pipeline deployed to a NATS cluster, as the
// sluice_pipelines bucket keeps it under the pipeline's name. Workers run
// the latest version of each deployed pipeline.
type Deployment struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"` // 1 for the first deploy, then one more per deploy
	// Run is the run the workers carry on: a deploy starts a new run unless
	// the latest one has not finished, which the new version continues.
	Run      uint64           `json:"run"`
	File     string           `json:"file"` // the file deployed, as named to deploy
	Spec     string           `json:"spec"` // its text; each worker interpolates ${VAR} itself
	Stages   []DeployedStage  `json:"stages"`
	Deployed time.Time        `json:"deployed"`
	Host     string           `json:"host"` // where deploy ran
	Revision uint64           `json:"-"`    // of the bucket entry
	Settings deployedSettings `json:"settings"`
}

// DeployedStage outlines a stage of a deployment, so that status needs
// neither the stage types nor the variables of the spec.
type DeployedStage struct {
	Name   string      `json:"name"`
	Type   string      `json:"type"`
	Role   stages.Role `json:"role"`
	Inputs []string    `json:"inputs,omitempty"` // the stages it reads
	// InputPartitions is the partitions of the stages it reads, 0 if
	// they are not partitioned.
	InputPartitions int `json:"input_partitions,omitempty"`
}

type deployedSettings struct {
	Replicas int `json:"replicas"`
}

func outline(p *pipeline.Pipeline) []DeployedStage {
	out := make([]DeployedStage, 0, len(p.Stages))
	for _, s := range p.Stages {
		d := DeployedStage{Name: s.Name, Type: s.Type, Role: s.Role, InputPartitions: s.InputPartitions}
		for _, in := range s.From {
			if !slices.Contains(d.Inputs, in.Stage) {
				d.Inputs = append(d.Inputs, in.Stage)
			}
		}
		out = append(out, d)
	}
	return out
}

// Control-plane buckets: how they are configured. The TTL of the workers
// and leases buckets is the lease time: a worker that stops renewing its
// entries loses them after it.
func controlBucket(name string, replicas int, ttl time.Duration) jetstream.KeyValueConfig {
	desc := map[string]string{
		pipeline.PipelinesBucket: "sluice deployed pipelines",
		pipeline.WorkersBucket:   "sluice worker heartbeats",
		pipeline.LeasesBucket:    "sluice source owners",
		pipeline.StateBucket:     "sluice run records and checkpoints",
	}[name]
	history := uint8(1)
	if name == pipeline.PipelinesBucket {
		history = 5 // the latest versions, for who deployed what
	}
	return jetstream.KeyValueConfig{
		Bucket:      name,
		Description: desc,
		Storage:     jetstream.FileStorage,
		History:     history,
		TTL:         ttl,
		Replicas:    replicas,
	}
}

// ensureBucket opens the bucket of cfg, creating it if needed, or raising
// its copies to cfg.Replicas. An existing bucket keeps its TTL, and one
// that has more copies keeps them.
func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
	case err == nil:
		var st jetstream.KeyValueStatus
		if st, err = kv.Status(ctx); err == nil {
			if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo().Config.Replicas < cfg.Replicas {
				cfg.TTL = st.TTL()
				kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Deploy stores pipeline p, read from spec, as the next version of its
// deployment, after provisioning its streams and consumers. A deploy
// starts a new run unless the latest run has not finished: then the new
// version carries it on, and the workers switch to it without losing a
// record.
func Deploy(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline, spec []byte) (*Deployment, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var pipes, state jetstream.KeyValue
	err = whilePlacing(ctx, slog.New(slog.DiscardHandler), func() error {
		if pipes, err = ensureBucket(ctx, js, controlBucket(pipeline.PipelinesBucket, p.Settings.Replicas, 0)); err != nil {
			return err
		}
		if state, err = stateBucket(ctx, js, p.Settings.Replicas); err != nil {
			return err
		}
		inputs, err := provision(ctx, js, p)
		if err != nil {
			return err
		}
		return pruneConsumers(ctx, js, p, inputs)
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	last, found, err := getJSON[runRecord](ctx, state, runKey(p.Name))
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: read run record: %w", p.Name, err)
	}
	d := &Deployment{
		Name:     p.Name,
		Run:      last.Run,
		File:     p.File,
		Spec:     string(spec),
		Stages:   outline(p),
		Deployed: time.Now().UTC(),
		Host:     hostName(),
		Settings: deployedSettings{Replicas: p.Settings.Replicas},
	}
	if !found || last.State == stateFinished {
		d.Run++
		if err := putRun(ctx, state, p.Name, runRecord{Run: d.Run, State: stateRunning}); err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
		}
	}
	// The next version, unless another deploy took it meanwhile.
	for {
		prev, err := getDeployment(ctx, pipes, p.Name)
		var rev uint64
		switch {
		case errors.Is(err, ErrNotDeployed):
			d.Version = 1
		case err != nil:
			return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
		default:
			d.Version, rev = prev.Version+1, prev.Revision
		}
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			d.Revision, err = pipes.Create(ctx, p.Name, b)
		} else {
			d.Revision, err = pipes.Update(ctx, p.Name, b, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongRevision(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: store deployment: %w", p.Name, err)
		}
		return d, nil
	}
}

// pruneConsumers deletes the durable consumers on the streams of p that
// no stage of p reads any more (a stage removed or rewired by a new
// version): with interest retention, such a consumer would keep every
// message of its stream and, once max_buffer is reached, stall the
// stages before it.
func pruneConsumers(ctx context.Context, js jetstream.JetStream, p *pipeline.Pipeline, inputs map[string][]input) error {
	want := make(map[string]bool) // "stream/consumer"
	for _, ins := range inputs {
		for _, in := range ins {
			want[in.stream+"/"+in.consumer.CachedInfo().Name] = true
		}
	}
	lister := js.StreamNames(ctx, jetstream.WithStreamListSubject(pipeline.Subject(p.Name, ">")))
	var streams []string
	for name := range lister.Name() {
		if name != pipeline.DLQStreamName(p.Name) {
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

// isWrongRevision reports whether err is a KV update's "wrong last
// sequence": the entry changed since it was read.
func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// getDeployment reads the deployment of pipeline name; ErrNotDeployed if
// there is none.
func getDeployment(ctx context.Context, pipes jetstream.KeyValue, name string) (*Deployment, error) {
	e, err := pipes.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotDeployed, name)
	}
	if err != nil {
		return nil, err
	}
	return decodeDeployment(e)
}

func decodeDeployment(e jetstream.KeyValueEntry) (*Deployment, error) {
	d := new(Deployment)
	if err := json.Unmarshal(e.Value(), d); err != nil {
		return nil, fmt.Errorf("deployment %s: %w", e.Key(), err)
	}
	d.Revision = e.Revision()
	return d, nil
}

// Deployments returns the deployed pipelines, by name; none when nothing
// was ever deployed.
func Deployments(ctx context.Context, nc *nats.Conn) ([]*Deployment, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	pipes, err := js.KeyValue(ctx, pipeline.PipelinesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lister, err := pipes.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Deployment
	for key := range lister.Keys() {
		d, err := getDeployment(ctx, pipes, key)
		if errors.Is(err, ErrNotDeployed) {
			continue // undeployed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *Deployment) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// UndeployOptions configure [Undeploy].
type UndeployOptions struct {
	// Purge also deletes the pipeline's streams (dead letters included),
	// its run record, checkpoints and source leases, and the state its
	// stages keep in NATS (see [state.PurgeState]), once no worker runs it
	// any more or Wait has passed.
	Purge bool
	// Wait bounds how long a purge waits for the workers to stop the
	// pipeline; 0 means a minute.
	Wait time.Duration
}

// Undeploy removes the deployment of pipeline name: the workers stop it
// cleanly (sources store their checkpoints, workers finish their
// batches). Without a purge, what its streams hold stays, and deploying it
// again carries on an unfinished run.
func Undeploy(ctx context.Context, nc *nats.Conn, name string, opts UndeployOptions) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	pipes, err := js.KeyValue(ctx, pipeline.PipelinesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("%w: %s", ErrNotDeployed, name)
	}
	if err != nil {
		return err
	}
	d, err := getDeployment(ctx, pipes, name)
	if err != nil {
		return err
	}
	if err := pipes.Delete(ctx, name, jetstream.LastRevision(d.Revision)); err != nil {
		return fmt.Errorf("pipeline %q: undeploy: %w", name, err)
	}
	if !opts.Purge {
		return nil
	}
	if opts.Wait == 0 {
		opts.Wait = time.Minute
	}
	if err := waitUnused(ctx, js, name, opts.Wait); err != nil {
		return fmt.Errorf("pipeline %q: %w", name, err)
	}
	return purge(ctx, js, name)
}

// waitUnused waits until no live worker reports running pipeline name, or
// wait has passed.
func waitUnused(ctx context.Context, js jetstream.JetStream, name string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		ws, err := liveWorkers(ctx, js)
		if err != nil {
			return err
		}
		used := slices.ContainsFunc(ws, func(w WorkerInfo) bool {
			return slices.ContainsFunc(w.Pipelines, func(p WorkerPipeline) bool { return p.Name == name })
		})
		if !used {
			return nil
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			if ctx.Err() == context.DeadlineExceeded {
				return nil // purge anyway: the workers' heartbeats may be stale
			}
			return ctx.Err()
		}
	}
}

// purge deletes the streams of pipeline name, its keys in the state and
// leases buckets, and the state its stages keep in NATS.
func purge(ctx context.Context, js jetstream.JetStream, name string) error {
	lister := js.StreamNames(ctx, jetstream.WithStreamListSubject(pipeline.Subject(name, ">")))
	var streams []string
	for s := range lister.Name() {
		streams = append(streams, s)
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	for _, s := range streams {
		if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("delete stream %s: %w", s, err)
		}
	}
	for _, b := range []string{pipeline.StateBucket, pipeline.LeasesBucket} {
		kv, err := js.KeyValue(ctx, b)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		keys, err := kv.ListKeysFiltered(ctx, runKey(name), checkpointKey(name, "*"))
		if err != nil {
			return err
		}
		for k := range keys.Keys() {
			if err := kv.Purge(ctx, k); err != nil {
				return fmt.Errorf("bucket %s: purge %s: %w", b, k, err)
			}
		}
	}
	return state.PurgeState(ctx, js, name)
}
