package runner_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
)

// TestRunOnCluster runs a pipeline with settings.replicas: 3 on a 3-node
// JetStream cluster and shuts one node down mid-run: the streams keep
// three copies, and the job finishes with every record once.
func TestRunOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-node cluster")
	}
	nodes := natstest.Cluster(t, 3)
	nc := reconnecting(t, natstest.URLs(nodes))

	run := startFaultRun(t, nc, "clustered", "replicas: 3, ack_wait: 2s", 10000)
	run.waitOutput(t, 20_000)
	// Stop a node other than the one the client is connected to, so the
	// test is about the streams' copies, not the reconnect.
	for _, s := range nodes {
		if s.ClientURL() != nc.ConnectedUrl() {
			s.Shutdown()
			break
		}
	}
	run.finish(t, "the node's shutdown")

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{schema.StreamName("clustered", "gen"), schema.DLQStreamName("clustered"), "KV_" + schema.StateBucket} {
		str, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if r := str.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}
}
