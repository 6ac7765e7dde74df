package runner_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// TestRunOnCluster runs a pipeline with settings.replicas: 3 on a 3-node
// JetStream cluster and shuts one node down mid-run: the streams keep
// three copies, and the job finishes with every record once.
func TestRunOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster")
	}
	const records = 10000
	nodes := natstest.Cluster(t, 3)
	nc, err := nats.Connect(natstest.URLs(nodes), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	out := filepath.Join(t.TempDir(), "out.jsonl")
	p, err := pipeline.Parse("cluster.yaml", []byte(`
name: clustered
settings:
  replicas: 3
  ack_wait: 2s
stages:
  - name: gen
    source: generate
    with: {count: 10000, template: '{"n": seq}'}
  - name: double
    transform: map
    with: {expr: 'merge($env, {"double": n * 2})'}
  - name: out
    sink: file
    with: {path: `+out+`}
`), pipeline.Options{Registry: stages.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		sum *runner.Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := runner.Run(context.Background(), nc, p, runner.Options{})
		done <- result{sum, err}
	}()
	natstest.WaitFor(t, time.Minute, "some output", func() bool {
		fi, err := os.Stat(out)
		return err == nil && fi.Size() > 20_000
	})
	// Stop a node other than the one the client is connected to, so the
	// test is about the streams' copies, not the reconnect.
	for _, s := range nodes {
		if s.ClientURL() != nc.ConnectedUrl() {
			s.Shutdown()
			break
		}
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the run did not finish within 2 minutes of the node's shutdown")
	}
	if res.err != nil || res.sum.Interrupted {
		t.Fatalf("run: %+v, %v", res.sum, res.err)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{pipeline.StreamName("clustered", "gen"), pipeline.DLQStreamName("clustered"), "KV_" + pipeline.StateBucket} {
		str, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if r := str.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}
	checkEachOnce(t, out, records)
}
