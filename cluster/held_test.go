package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages/builtin"
)

// A stage held by a destination that is down shows in the status: on
// which worker, since when and why, without the password of its URL; once
// the destination is back, the run finishes and the stage is held no
// more.
func TestStatusShowsHeldStage(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: connections are refused
	const records = 50
	spec := fmt.Sprintf(`
name: heldp
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '{"n": seq}'}
  - name: post
    sink: http
    with: {url: 'http://user:s3cret@%s/in', retries: 0}
`, records, addr)
	p, err := pipeline.Parse("heldp.yaml", []byte(spec), pipeline.Options{Registry: builtin.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cluster.Deploy(ctx, nc, p, []byte(spec)); err != nil {
		t.Fatal(err)
	}
	startWorker(t, nc, "w1")

	var held *cluster.StageStatus
	natstest.WaitFor(t, time.Minute, "the sink held in the status", func() bool {
		st := status(t, nc, "heldp")
		s := st.Pipelines[0].Stages[1]
		if len(s.Held) == 1 {
			held = &s
			// The deployment holds the spec as written; what the workers
			// report must not.
			b, _ := json.Marshal([]any{s, st.Workers})
			if strings.Contains(string(b), "s3cret") {
				t.Fatalf("the status shows the URL's password: %s", b)
			}
		}
		return held != nil
	})
	h := held.Held[0]
	if h.Worker != "w1" || h.Since.IsZero() || !strings.Contains(h.Error, "refused") || held.DeadLetters != 0 {
		t.Errorf("held: %+v, %d dead letters; want on w1, since a time, refused, none", h, held.DeadLetters)
	}

	var got atomic.Int64
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-served })

	waitRun(t, nc, "heldp", 1)
	if n := got.Load(); n < records {
		t.Errorf("endpoint got %d requests, want %d or more", n, records)
	}
	natstest.WaitFor(t, time.Minute, "the sink held no more", func() bool {
		return len(status(t, nc, "heldp").Pipelines[0].Stages[1].Held) == 0
	})
}
