package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages/builtin"
)

// deployGenerated deploys a pipeline of records generated records {"n": i}
// at rate per second (0: at once) through a map adding "double" into the
// file out.
func deployGenerated(t *testing.T, nc *nats.Conn, name string, records int, rate float64, out string) *cluster.Deployment {
	t.Helper()
	spec := fmt.Sprintf(`
name: %s
settings: {ack_wait: 5s}
stages:
  - name: gen
    source: generate
    with: {count: %d, rate: %g, template: '{"n": seq}'}
  - name: double
    transform: map
    replicas: 2
    with: {expr: 'merge($env, {"double": n * 2})'}
  - name: out
    sink: file
    with: {path: %s}
`, name, records, rate, out)
	p, err := pipeline.Parse(name+".yaml", []byte(spec), pipeline.Options{Registry: builtin.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := cluster.Deploy(ctx, nc, p, []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// startWorker runs a worker in the background until the test ends.
func startWorker(t *testing.T, nc *nats.Conn, id string) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// The tests' files are in t.TempDir(), under os.TempDir(): the
		// worker's data directory.
		done <- cluster.RunWorker(ctx, nc, cluster.WorkerOptions{ID: id, LeaseTTL: 2 * time.Second, StopTimeout: 10 * time.Second, Registry: builtin.NewRegistry(),
			Policy: pipeline.Policy{DataDir: os.TempDir()}})
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func status(t *testing.T, nc *nats.Conn, name string) *cluster.StatusReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cluster.Status(ctx, nc, name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func waitRun(t *testing.T, nc *nats.Conn, name string, run uint64) {
	t.Helper()
	natstest.WaitFor(t, 2*time.Minute, fmt.Sprintf("run %d of %s to finish", run, name), func() bool {
		st := status(t, nc, name)
		ps := st.Pipelines[0]
		return ps.Deployment.Run == run && ps.RunState == "finished"
	})
}

func TestWorkersRunDeployedPipeline(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	out := filepath.Join(t.TempDir(), "out.jsonl")
	const records = 10_000

	d := deployGenerated(t, nc, "deployed", records, 0, out)
	if d.Version != 1 || d.Run != 1 {
		t.Fatalf("first deploy: version %d run %d, want 1 1", d.Version, d.Run)
	}
	stop1 := startWorker(t, nc, "w1")
	stop2 := startWorker(t, nc, "w2")
	waitRun(t, nc, "deployed", 1)
	natstest.CheckExactlyOnce(t, out, records)

	// Both workers run the transform; one owns the file, the other stands
	// by behind its lock.
	natstest.WaitFor(t, 10*time.Second, "both workers in the status", func() bool {
		st := status(t, nc, "deployed")
		if len(st.Workers) != 2 {
			return false
		}
		stg := st.Pipelines[0].Stages
		return slices.Equal(stg[1].Workers, []string{"w1", "w2"}) &&
			len(stg[2].Workers) == 1 && len(stg[2].Standby) == 1
	})

	// A new version of a finished pipeline starts a new run.
	d = deployGenerated(t, nc, "deployed", records/2, 0, out)
	if d.Version != 2 || d.Run != 2 {
		t.Fatalf("second deploy: version %d run %d, want 2 2", d.Version, d.Run)
	}
	waitRun(t, nc, "deployed", 2)
	natstest.CheckExactlyOnce(t, out, records/2)

	if err := stop1(); err != nil {
		t.Fatalf("worker w1: %v", err)
	}
	natstest.WaitFor(t, 10*time.Second, "w1 to leave", func() bool {
		ws := status(t, nc, "").Workers
		return len(ws) == 1 && ws[0].ID == "w2"
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// What a dedupe stage of the pipeline would have left.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "sluice_dedupe_deployed_x"}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Undeploy(ctx, nc, "deployed", cluster.UndeployOptions{Purge: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(ctx, "sluice_dedupe_deployed_x"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("dedupe bucket after undeploy --purge: %v, want it deleted", err)
	}
	if _, err := js.Stream(ctx, schema.StreamName("deployed", "gen")); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream after undeploy --purge: %v, want it deleted", err)
	}
	if _, err := cluster.Status(ctx, nc, "deployed"); !errors.Is(err, cluster.ErrNotDeployed) {
		t.Fatalf("status after undeploy: %v, want ErrNotDeployed", err)
	}
	if err := stop2(); err != nil {
		t.Fatalf("worker w2: %v", err)
	}
}

// TestNewVersionWhileRunning deploys a new version of a pipeline while its
// run goes on: the workers switch to it and the run finishes with every
// record once.
func TestNewVersionWhileRunning(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	out := filepath.Join(t.TempDir(), "out.jsonl")
	// Paced, so that the run is still going when the new version comes.
	const records, rate = 20_000, 5000

	deployGenerated(t, nc, "switch", records, rate, out)
	startWorker(t, nc, "w1")
	startWorker(t, nc, "w2")
	natstest.WaitFor(t, time.Minute, "some output", func() bool {
		return fileSize(out) > 0
	})
	d := deployGenerated(t, nc, "switch", records, rate, out)
	if d.Version != 2 || d.Run != 1 {
		t.Fatalf("deploy while running: version %d run %d, want version 2 carrying run 1", d.Version, d.Run)
	}
	natstest.WaitFor(t, 10*time.Second, "the workers to switch", func() bool {
		n := 0
		for _, w := range status(t, nc, "switch").Workers {
			for _, p := range w.Pipelines {
				if p.Version == 2 {
					n++
				}
			}
		}
		return n == 2
	})
	waitRun(t, nc, "switch", 1)
	natstest.CheckExactlyOnce(t, out, records)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestDeployPrunesConsumers deploys a version without a stage: its
// consumer goes, or it would hold every message of its stream.
func TestDeployPrunesConsumers(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deploy := func(spec string) {
		t.Helper()
		p, err := pipeline.Parse("p.yaml", []byte(spec), pipeline.Options{Registry: builtin.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cluster.Deploy(ctx, nc, p, []byte(spec)); err != nil {
			t.Fatal(err)
		}
	}
	consumers := func() []string {
		t.Helper()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		str, err := js.Stream(ctx, schema.StreamName("prune", "gen"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for n := range str.ConsumerNames(ctx).Name() {
			names = append(names, n)
		}
		slices.Sort(names)
		return names
	}
	deploy(`{name: prune, stages: [{name: gen, source: generate, with: {count: 1}}, {name: a, sink: discard, from: gen}, {name: b, sink: discard, from: gen}]}`)
	if got := consumers(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("consumers on gen: %v, want [a b]", got)
	}
	deploy(`{name: prune, stages: [{name: gen, source: generate, with: {count: 1}}, {name: b, sink: discard, from: gen}]}`)
	if got := consumers(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("consumers on gen after a was removed: %v, want [b]", got)
	}
	// Partitioned: one consumer per partition, kept; b's unpartitioned
	// one goes.
	deploy(`{name: prune, stages: [{name: gen, source: generate, with: {count: 1}, key: seq, partitions: 3}, {name: b, sink: discard, from: gen}]}`)
	if got := consumers(); !slices.Equal(got, []string{"b_0", "b_1", "b_2"}) {
		t.Fatalf("consumers on gen once partitioned: %v, want [b_0 b_1 b_2]", got)
	}
}
