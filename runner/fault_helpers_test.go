package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages/builtin"
)

// faultRun is a run of `records` generated records {"n": i} through a map
// that adds "double" into a file sink, started in the background on nc so
// that a test can inflict a fault on the server while it goes.
type faultRun struct {
	out     string // the sink's file
	records int
	done    chan faultResult
}

type faultResult struct {
	sum *runner.Summary
	err error
}

// startFaultRun parses the pipeline (settings is YAML for its settings
// mapping) and starts it.
func startFaultRun(t *testing.T, nc *nats.Conn, name, settings string, records int) *faultRun {
	t.Helper()
	r := &faultRun{out: filepath.Join(t.TempDir(), "out.jsonl"), records: records, done: make(chan faultResult, 1)}
	p, err := pipeline.Parse(name+".yaml", []byte(fmt.Sprintf(`
name: %s
settings: {%s}
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '{"n": seq}'}
  - name: double
    transform: map
    with: {expr: 'merge($env, {"double": n * 2})'}
  - name: out
    sink: file
    with: {path: %s}
`, name, settings, records, r.out)), pipeline.Options{Registry: builtin.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		sum, err := runner.Run(context.Background(), nc, p, runner.Options{})
		r.done <- faultResult{sum, err}
	}()
	return r
}

// waitOutput waits until the sink's file holds at least size bytes; the
// run must not end before.
func (r *faultRun) waitOutput(t *testing.T, size int64) {
	t.Helper()
	var ended *faultResult
	natstest.WaitFor(t, time.Minute, "some output", func() bool {
		select {
		case res := <-r.done:
			ended = &res
			return true
		default:
		}
		fi, err := os.Stat(r.out)
		return err == nil && fi.Size() >= size
	})
	if ended != nil {
		t.Fatalf("the run ended before the fault: %+v, %v", ended.sum, ended.err)
	}
}

// finish waits for the run to end cleanly and checks that the file holds
// every record once.
func (r *faultRun) finish(t *testing.T, what string) {
	t.Helper()
	var res faultResult
	select {
	case res = <-r.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the run did not finish within 2 minutes of %s", what)
	}
	if res.err != nil || res.sum.Interrupted {
		t.Fatalf("run: %+v, %v", res.sum, res.err)
	}
	natstest.CheckExactlyOnce(t, r.out, r.records)
}

// reconnecting connects to urls and keeps reconnecting, quickly.
func reconnecting(t *testing.T, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
