package runner_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// TestRunSurvivesServerRestart shuts the NATS server down while a run is
// connected and starts it again on the same store: the runner reconnects
// and finishes with every record in the file exactly once.
func TestRunSurvivesServerRestart(t *testing.T) {
	const records = 10000
	store := t.TempDir()
	s := natstest.ServerOn(t, store, server.RANDOM_PORT)
	port := s.Addr().(*net.TCPAddr).Port
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	out := filepath.Join(t.TempDir(), "out.jsonl")
	p, err := pipeline.Parse("restart.yaml", []byte(`
name: restart
settings:
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
		return err == nil && fi.Size() > 2000*20
	})
	s.Shutdown()
	s.WaitForShutdown()
	natstest.WaitFor(t, 10*time.Second, "the runner to notice", func() bool { return !nc.IsConnected() })
	natstest.ServerOn(t, store, port)

	var res result
	select {
	case res = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the run did not finish within 2 minutes of the restart")
	}
	if res.err != nil || res.sum.Interrupted {
		t.Fatalf("run: %+v, %v", res.sum, res.err)
	}
	if nc.Stats().Reconnects == 0 {
		t.Fatal("the connection never reconnected")
	}

	checkEachOnce(t, out, records)
}

// checkEachOnce checks that the JSON lines file at path holds records
// {"n": i, "double": 2i} for i from 0 to records-1, each once.
func checkEachOnce(t *testing.T, path string, records int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make(map[int]int)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct{ N, Double int }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Double != 2*rec.N {
			t.Fatalf("bad line %q", sc.Text())
		}
		seen[rec.N]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	wrong := 0
	for n := range records {
		if seen[n] != 1 {
			if wrong++; wrong <= 5 {
				t.Errorf("record %d written %d times", n, seen[n])
			}
		}
	}
}
