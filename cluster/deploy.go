package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages/state"
)

// Deployment is a pipeline deployed to a NATS cluster, as the
// sluice_pipelines bucket keeps it under the pipeline's name. Workers run
// the latest version of each deployed pipeline.
type Deployment = schema.Deployment

// DeployedStage outlines a stage of a deployment, so that status needs
// neither the stage types nor the variables of the spec.
type DeployedStage = schema.DeployedStage

// outline returns the outline of the stages of p.
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

// Deploy stores pipeline p, read from spec, as the next version of its
// deployment, after provisioning its streams and consumers. A deploy
// starts a new run unless the latest run has not finished: then the new
// version carries it on, and the workers switch to it without losing a
// record. The deployment records who deployed it: the connection's NATS
// user and account, as the server says.
func Deploy(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline, spec []byte) (*Deployment, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	// The buckets first: raising the copies of one that workers created
	// takes the cluster a moment, which provisioning gives it before the
	// run record is written.
	var pipes jetstream.KeyValue
	err = retry.WhilePlacing(ctx, nil, func() error {
		if pipes, err = schema.EnsureBucket(ctx, js, schema.Bucket(schema.PipelinesBucket, p.Settings.Replicas, 0)); err != nil {
			return err
		}
		_, err = schema.EnsureBucket(ctx, js, schema.Bucket(schema.StateBucket, p.Settings.Replicas, 0))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	if err := runner.Reprovision(ctx, nc, p); err != nil {
		return nil, err
	}
	run, _, err := runner.BeginRun(ctx, nc, p)
	if err != nil {
		return nil, err
	}
	d := &Deployment{
		Name:     p.Name,
		Run:      run,
		File:     p.File,
		Spec:     string(spec),
		Stages:   outline(p),
		Deployed: time.Now().UTC(),
		Host:     runner.DefaultWorkerID(),
		Settings: schema.DeployedSettings{Replicas: p.Settings.Replicas},
	}
	d.DeployedBy, d.Account = whoAmI(ctx, nc)
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
		if errors.Is(err, jetstream.ErrKeyExists) || schema.IsWrongRevision(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: store deployment: %w", p.Name, err)
		}
		return d, nil
	}
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
	pipes, err := js.KeyValue(ctx, schema.PipelinesBucket)
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
	pipes, err := js.KeyValue(ctx, schema.PipelinesBucket)
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
		if !retry.Sleep(ctx, 250*time.Millisecond) {
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
	lister := js.StreamNames(ctx, jetstream.WithStreamListSubject(schema.Subject(name, ">")))
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
	for _, b := range []string{schema.StateBucket, schema.LeasesBucket} {
		kv, err := js.KeyValue(ctx, b)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		keys, err := kv.ListKeysFiltered(ctx, schema.RunKey(name), schema.CheckpointKey(name, "*"))
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
