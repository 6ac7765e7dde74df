package runner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// flakyEndpoint is an HTTP endpoint on a fixed loopback port that can be
// down (nothing listens: connections are refused), overloaded (it answers
// 503) or up. Up, it stores each record once per Idempotency-Key and
// refuses with 400 a record holding "bad".
type flakyEndpoint struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	srv      *http.Server
	served   sync.WaitGroup
	status   int               // while up: 0 serves, else the answer to every request
	seen     map[string]string // Idempotency-Key -> body
	requests int               // requests received
}

// newFlakyEndpoint returns an endpoint that is down.
func newFlakyEndpoint(t *testing.T) *flakyEndpoint {
	e := &flakyEndpoint{t: t, addr: freeAddr(t), seen: map[string]string{}}
	t.Cleanup(e.down)
	return e
}

func (e *flakyEndpoint) url() string { return "http://" + e.addr + "/in" }

// up listens again on the endpoint's port, answering status to every
// request (0: serving).
func (e *flakyEndpoint) up(status int) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status = status
	if e.srv != nil {
		return
	}
	ln, err := net.Listen("tcp", e.addr)
	if err != nil {
		e.t.Fatalf("listen again on %s: %v", e.addr, err)
	}
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serve)}
	srv := e.srv
	e.served.Go(func() { _ = srv.Serve(ln) })
}

// down closes the listener and every connection: new connections are
// refused.
func (e *flakyEndpoint) down() {
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		e.served.Wait()
	}
}

func (e *flakyEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests++
	switch {
	case err != nil:
		http.Error(w, "read", http.StatusBadRequest)
	case e.status != 0:
		http.Error(w, "overloaded", e.status)
	case bytes.Contains(b, []byte("bad")):
		http.Error(w, "bad record", http.StatusBadRequest)
	default:
		e.seen[r.Header.Get("Idempotency-Key")] = string(b)
		w.WriteHeader(http.StatusNoContent)
	}
}

// counts returns the records stored and the requests received.
func (e *flakyEndpoint) counts() (stored, requests int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.seen), e.requests
}

// logRecorder is a slog.Handler that keeps the messages logged at Warn
// and above, and the Info ones, with their stage.
type logRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newLogRecorder() logRecorder { return logRecorder{mu: new(sync.Mutex), msgs: new([]string)} }

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	*l.msgs = append(*l.msgs, r.Level.String()+" "+r.Message)
	l.mu.Unlock()
	return nil
}
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many messages logged start with prefix.
func (l logRecorder) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range *l.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

const (
	heldLog      = "WARN destination unavailable"
	recoveredLog = "INFO destination back"
)

// outagePipeline is records generated records posted to url by an http
// sink that does not retry by itself, with a short pipeline backoff: a
// record that failed as a record would be dead-lettered within 20ms.
func outagePipeline(t *testing.T, e *env, name, url string, records int, template, extra string) *pipeline.Pipeline {
	return outagePipelineWith(t, e, name, "{}", url, records, template, extra)
}

// outagePipelineWith is outagePipeline with settings (YAML).
func outagePipelineWith(t *testing.T, e *env, name, settings, url string, records int, template, extra string) *pipeline.Pipeline {
	return e.parse(t, fmt.Sprintf(`
name: %s
settings: %s
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '%s'}
  - name: post
    sink: http
    max_deliver: 2
    backoff: [10ms]
    %s
    with: {url: '%s', retries: 0, timeout: 2s}
`, name, settings, records, template, extra, url))
}

type runResult struct {
	sum *runner.Summary
	err error
}

func startRun(ctx context.Context, e *env, p *pipeline.Pipeline, log logRecorder) chan runResult {
	done := make(chan runResult, 1)
	go func() {
		sum, err := runner.Run(ctx, e.nc, p, runner.Options{Registry: e.reg, Logger: slog.New(log), StopTimeout: 30 * time.Second})
		done <- runResult{sum, err}
	}()
	return done
}

// An http sink whose endpoint is down (refused, or answering 503) for far
// longer than max_deliver × backoff holds its records instead of
// dead-lettering them: once the endpoint is back, every record reaches
// it, and only the records it refuses with 400 are dead letters, with the
// reason.
func TestOutageHoldsTheSink(t *testing.T) {
	const records = 500
	for _, tc := range []struct {
		name     string
		pipeline string
		outage   int // 0: refused; else the status answered
		template string
		bad      int // records the endpoint refuses with 400
	}{
		{"refused", "refused", 0, `{"n": seq}`, 0},
		{"503", "overloaded", http.StatusServiceUnavailable, `{"n": seq}`, 0},
		{"refused, then 400 for some", "refused-some-bad", 0, `seq % 10 == 3 ? {"n": seq, "kind": "bad"} : {"n": seq}`, records / 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ep := newFlakyEndpoint(t)
			if tc.outage != 0 {
				ep.up(tc.outage)
			}
			name := tc.pipeline
			p := outagePipeline(t, e, name, ep.url(), records, tc.template, "")
			log := newLogRecorder()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			done := startRun(ctx, e, p, log)

			natstest.WaitFor(t, time.Minute, "the sink held", func() bool { return log.count(heldLog) == 1 })
			// Without the hold, a record would be dead-lettered within 2
			// deliveries 10ms apart: let the outage last 50 times that.
			heldAt := time.Now()
			natstest.WaitFor(t, time.Minute, "a long outage", func() bool { return time.Since(heldAt) > time.Second })
			if n := len(e.deadLetters(t, name)); n != 0 {
				t.Fatalf("%d dead letters during the outage", n)
			}
			ep.up(0)

			var res runResult
			select {
			case res = <-done:
			case <-ctx.Done():
				t.Fatal("the run did not finish after the endpoint came back")
			}
			if res.err != nil || res.sum.Interrupted {
				t.Fatalf("run: %+v, %v", res.sum, res.err)
			}
			if stored, _ := ep.counts(); stored != records-tc.bad {
				t.Errorf("endpoint stored %d records, want %d", stored, records-tc.bad)
			}
			post := stageSum(t, res.sum, "post")
			if post.In != records || post.Out != uint64(records-tc.bad) || post.DeadLetters != uint64(tc.bad) || post.Errors != 0 {
				t.Errorf("sink: %+v; want in %d, out %d, %d dead letters, no errors", post, records, records-tc.bad, tc.bad)
			}
			if post.Outages < 1 || post.Held < time.Second || !post.HeldSince.IsZero() || post.HeldBy != "" {
				t.Errorf("sink held %s in %d outages (since %v, by %q); want at least 1s in 1 or more, held no more", post.Held, post.Outages, post.HeldSince, post.HeldBy)
			}
			dead := e.deadLetters(t, name)
			if len(dead) != tc.bad {
				t.Fatalf("%d dead letters, want %d", len(dead), tc.bad)
			}
			for _, m := range dead {
				if !strings.Contains(string(m.Data), "bad") || !strings.Contains(m.Header.Get(stages.HeaderError), "400 Bad Request: bad record") {
					t.Errorf("dead letter %s with error %q; want only the bad records, refused with 400", m.Data, m.Header.Get(stages.HeaderError))
				}
			}
			if log.count(heldLog) != 1 || log.count(recoveredLog) != 1 {
				t.Errorf("logged %d holds and %d recoveries, want 1 of each", log.count(heldLog), log.count(recoveredLog))
			}
			var table strings.Builder
			if err := res.sum.WriteTable(&table); err != nil || !strings.Contains(table.String(), "outage") {
				t.Errorf("summary table without the held time:\n%s", table.String())
			}
		})
	}
}

// Past its max_outage a held stage fails the run, loudly, with nothing
// dead-lettered; the next run, once the endpoint is back, delivers every
// record.
func TestOutageMaxOutage(t *testing.T) {
	const records = 300
	e := newEnv(t)
	ep := newFlakyEndpoint(t)
	p := outagePipeline(t, e, "maxout", ep.url(), records, `{"n": seq}`, "max_outage: 500ms")
	log := newLogRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	res := <-startRun(ctx, e, p, log)
	if !errors.Is(res.err, runner.ErrMaxOutage) {
		t.Fatalf("run: %v; want ErrMaxOutage", res.err)
	}
	for _, want := range []string{`pipeline "maxout"`, `stage "post"`, "max_outage 500ms", "refused", "given back"} {
		if !strings.Contains(res.err.Error(), want) {
			t.Errorf("error %q does not say %q", res.err, want)
		}
	}
	if !res.sum.Interrupted {
		t.Errorf("summary: %+v, want interrupted", res.sum)
	}
	if post := stageSum(t, res.sum, "post"); post.Out != 0 || post.DeadLetters != 0 || post.Errors != 0 || post.Held < 500*time.Millisecond {
		t.Errorf("sink: %+v; want nothing written or dead-lettered, held 500ms or more", post)
	}
	if n := len(e.deadLetters(t, "maxout")); n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}

	ep.up(0)
	res = <-startRun(ctx, e, p, newLogRecorder())
	if res.err != nil || res.sum.Interrupted || !res.sum.Resumed {
		t.Fatalf("second run: %+v, %v; want a resumed run that finished", res.sum, res.err)
	}
	if stored, _ := ep.counts(); stored != records {
		t.Errorf("endpoint stored %d records, want %d", stored, records)
	}
	if n := len(e.deadLetters(t, "maxout")); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// While the sink is held, backpressure reaches the source: it publishes
// no more than its stream holds (max_buffer), all of it delivered to the
// held sink and none acknowledged, however long the outage lasts. (The
// sink asks for its stream: fused with the source, a held sink holds the
// source's loop itself.)
func TestOutageBackpressure(t *testing.T) {
	const records, maxBuffer = 1000, 200
	e := newEnv(t)
	ep := newFlakyEndpoint(t)
	ep.up(http.StatusServiceUnavailable) // answers, so its requests count the tries
	p := e.parse(t, fmt.Sprintf(`
name: held
settings: {max_buffer: %d}
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '{"n": seq}'}
  - name: post
    sink: http
    buffer: durable
    with: {url: '%s', retries: 0}
`, maxBuffer, records, ep.url()))
	log := newLogRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := startRun(ctx, e, p, log)

	// The records the source published: its stream keeps them all, as
	// none is acknowledged (interest retention).
	published := func() uint64 {
		stream, err := e.js.Stream(ctx, schema.StreamName("held", "gen"))
		if err != nil {
			return 0 // not provisioned yet
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	natstest.WaitFor(t, time.Minute, "the source's stream full", func() bool { return published() >= maxBuffer })
	_, tries := ep.counts()
	natstest.WaitFor(t, time.Minute, "3 more tries of the held sink", func() bool {
		_, n := ep.counts()
		return n >= tries+3
	})
	if n := published(); n != maxBuffer {
		t.Errorf("the source published %d records while the sink was held, want %d (max_buffer)", n, maxBuffer)
	}
	c, err := e.js.Consumer(ctx, schema.StreamName("held", "gen"), schema.ConsumerName("post"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != maxBuffer || info.AckFloor.Stream != 0 || info.NumRedelivered != 0 {
		t.Errorf("consumer: %d awaiting acknowledgement, ack floor %d, %d redelivered; want %d, 0, 0",
			info.NumAckPending, info.AckFloor.Stream, info.NumRedelivered, maxBuffer)
	}

	ep.up(0)
	res := <-done
	if res.err != nil || res.sum.Interrupted {
		t.Fatalf("run: %+v, %v", res.sum, res.err)
	}
	if stored, _ := ep.counts(); stored != records {
		t.Errorf("endpoint stored %d records, want %d", stored, records)
	}
}

// Stopped while held, a stage gives its records back (nothing is
// dead-lettered) and the run stops within its stop timeout, interrupted;
// the next run delivers every record.
func TestOutageStopWhileHeld(t *testing.T) {
	const records = 300
	e := newEnv(t)
	ep := newFlakyEndpoint(t)
	// A message in transit to a pull request that the stop cuts short is
	// delivered again after ack_wait: a short one keeps the second run
	// short.
	p := outagePipelineWith(t, e, "stopheld", "{ack_wait: 1s}", ep.url(), records, `{"n": seq}`, "")
	log := newLogRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := startRun(runCtx, e, p, log)
	natstest.WaitFor(t, time.Minute, "the sink held", func() bool { return log.count(heldLog) == 1 })
	stop()
	var res runResult
	select {
	case res = <-done:
	case <-time.After(30 * time.Second): // the stop timeout
		t.Fatal("the run did not stop within its stop timeout")
	}
	if res.err != nil || !res.sum.Interrupted {
		t.Fatalf("stopped run: %+v, %v; want interrupted, no error", res.sum, res.err)
	}
	if post := stageSum(t, res.sum, "post"); post.DeadLetters != 0 || post.Errors != 0 || post.Outages != 1 || !post.HeldSince.IsZero() {
		t.Errorf("sink: %+v; want no dead letters or errors, 1 outage over", post)
	}
	if log.count(recoveredLog) != 0 {
		t.Error("logged a recovery, but the endpoint never came back")
	}
	if n := len(e.deadLetters(t, "stopheld")); n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}
	ep.up(0)
	res = <-startRun(ctx, e, p, newLogRecorder())
	if res.err != nil || res.sum.Interrupted {
		t.Fatalf("second run: %+v, %v", res.sum, res.err)
	}
	if stored, _ := ep.counts(); stored != records {
		t.Errorf("endpoint stored %d records, want %d", stored, records)
	}
}
