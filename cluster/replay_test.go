package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/dlq"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages/builtin"
)

// deployFailing deploys a paced pipeline of records {"n": i, "double":
// 2i} whose map fails on the records where n % 7 == 3 if broken.
func deployFailing(t *testing.T, nc *nats.Conn, records int, rate float64, out string, broken bool) *cluster.Deployment {
	t.Helper()
	spec := strings.NewReplacer("RECORDS", fmt.Sprint(records), "RATE", fmt.Sprint(rate), "OUT", out, "BROKEN", fmt.Sprint(broken)).Replace(`
name: replayed
settings: {ack_wait: 5s}
stages:
  - name: gen
    source: generate
    with: {count: RECORDS, rate: RATE, template: '{"n": seq}'}
  - name: double
    transform: map
    with: {expr: '{"n": n, "double": n % 7 == 3 && BROKEN ? int("x" + string(n)) : n * 2}'}
  - name: out
    sink: file
    with: {path: OUT}
`)
	p, err := pipeline.Parse("replayed.yaml", []byte(spec), pipeline.Options{Registry: builtin.NewRegistry()})
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

// TestReplayIntoDeployedRun: a deployed pipeline dead-letters records; a
// fixed version carries the run on, and a replay of its dead letters is
// processed by the running workers within that run: the output holds
// every record once.
func TestReplayIntoDeployedRun(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	out := filepath.Join(t.TempDir(), "out.jsonl")
	// Paced, so that the run is still going when the fix comes.
	const records, rate = 1000, 100
	deployFailing(t, nc, records, rate, out, true)
	startWorker(t, nc, "w1")
	ctx := context.Background()
	natstest.WaitFor(t, time.Minute, "some dead letters", func() bool {
		dead, err := dlq.List(ctx, nc, "replayed", dlq.Filter{}, 3)
		return err == nil && len(dead) == 3
	})

	d := deployFailing(t, nc, records, rate, out, false)
	if d.Version != 2 || d.Run != 1 {
		t.Fatalf("the fix: version %d run %d, want version 2 carrying run 1", d.Version, d.Run)
	}
	natstest.WaitFor(t, 10*time.Second, "the worker to switch", func() bool {
		w := status(t, nc, "replayed").Workers
		return len(w) == 1 && len(w[0].Pipelines) == 1 && w[0].Pipelines[0].Version == 2
	})
	res, err := dlq.Replay(ctx, nc, "replayed", dlq.Filter{Run: 1})
	if err != nil || res.Replayed == 0 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	waitRun(t, nc, "replayed", 1)
	natstest.WaitFor(t, time.Minute, "every record in the output", func() bool {
		b, _ := os.ReadFile(out)
		return bytes.Count(b, []byte("\n")) >= records
	})
	natstest.CheckExactlyOnce(t, out, records)
	if left, err := dlq.List(ctx, nc, "replayed", dlq.Filter{}, 0); err != nil || len(left) != 0 {
		t.Fatalf("%d dead letters left (%v)", len(left), err)
	}
}
