package observe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages/builtin"
)

// serve starts an observe server on a free loopback port for the test and
// returns it with its base URL.
func serve(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	s, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, s)
	return s, "http://" + s.Addr()
}

// startRun runs the pipeline in yml on a server of its own, telling s
// when its stages run; the returned channel gives the run's error once it
// ends. The run is stopped, and waited for, at cleanup.
func startRun(t *testing.T, s *Server, yml string) <-chan error {
	t.Helper()
	nc := natstest.Connect(t, natstest.Server(t))
	reg := builtin.NewRegistry()
	p, err := pipeline.Parse("test.yaml", []byte(yml), pipeline.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_, err := runner.Run(ctx, nc, p, runner.Options{Registry: reg, Started: s.Started, Stdout: io.Discard})
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-ended
	})
	return done
}

// get asks url with the bearer token (none if empty) and returns the
// answer's status and body.
func get(t *testing.T, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func getStatus(t *testing.T, base, token string) Snapshot {
	t.Helper()
	resp, body := get(t, base+"/api/status", token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/api/status: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/api/status: Content-Type %q, want application/json", ct)
	}
	var snap Snapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		t.Fatalf("/api/status: %v in %s", err, body)
	}
	return snap
}

const statusPipeline = `
name: words
stages:
  - name: gen
    source: generate
    with: {count: 10, template: '{"n": seq}'}
  - name: even
    transform: filter
    with: {expr: 'n % 2 == 0'}
  - name: out
    sink: discard
  - name: raw
    sink: discard
    from: [gen]
`

// TestAPIStatus runs a pipeline to its end with the observe server told
// of it, and reads /api/status before, at the end and after: the states,
// the graph and the counts, and the bearer token asked of it (and not of
// the page).
func TestAPIStatus(t *testing.T) {
	const token = "s3cret"
	s, base := serve(t, Options{Token: token, Pipelines: []string{"words"}})

	for _, tc := range []struct {
		name, path, token string
		want              int
	}{
		{name: "status without token", path: "/api/status", want: http.StatusUnauthorized},
		{name: "status with a wrong token", path: "/api/status", token: "wrong", want: http.StatusUnauthorized},
		{name: "status with the token", path: "/api/status", token: token, want: http.StatusOK},
		{name: "page without token", path: "/", want: http.StatusOK},
		{name: "no other page", path: "/index.html", want: http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, base+tc.path, tc.token)
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s: %d %s, want %d", tc.path, resp.StatusCode, body, tc.want)
			}
		})
	}

	snap := getStatus(t, base, token)
	if len(snap.Pipelines) != 1 || snap.Pipelines[0].Name != "words" || snap.Pipelines[0].State != SnapshotWaiting || len(snap.Pipelines[0].Stages) != 0 {
		t.Fatalf("before the run: %+v, want words waiting without stages", snap.Pipelines)
	}
	if snap.Time.IsZero() {
		t.Error("the snapshot has no time")
	}

	if err := <-startRun(t, s, statusPipeline); err != nil {
		t.Fatal(err)
	}
	snap = getStatus(t, base, token)
	p := snap.Pipelines[0]
	if p.State != SnapshotRunning || p.Run != 1 {
		t.Fatalf("after the run, before Stopped: state %q run %d, want running run 1", p.State, p.Run)
	}
	zero := uint64(0)
	want := []StageSnapshot{
		{Name: "gen", Type: "generate", Role: "source", Inputs: []InputRef{}, In: 10, Out: 10},
		{Name: "even", Type: "filter", Role: "transform", Inputs: []InputRef{{Stage: "gen"}}, In: 10, Out: 5, Filtered: 5, Pending: &zero, AckPending: &zero},
		{Name: "out", Type: "discard", Role: "sink", Inputs: []InputRef{{Stage: "even"}}, In: 5, Out: 5, Pending: &zero, AckPending: &zero},
		{Name: "raw", Type: "discard", Role: "sink", Inputs: []InputRef{{Stage: "gen"}}, In: 10, Out: 10, Pending: &zero, AckPending: &zero},
	}
	if len(p.Stages) != len(want) {
		t.Fatalf("stages %+v, want %d", p.Stages, len(want))
	}
	for i, w := range want {
		got := p.Stages[i]
		got.HeldSeconds = 0 // never held, but measured
		if !equalStage(got, w) {
			t.Errorf("stage %d:\n got %s\nwant %s", i, show(got), show(w))
		}
	}

	// Stopped, it keeps its last counts, without the backlog.
	s.Stopped("words")
	snap = getStatus(t, base, token)
	p = snap.Pipelines[0]
	if p.State != SnapshotStopped || p.Run != 1 || len(p.Stages) != len(want) {
		t.Fatalf("after Stopped: %+v, want stopped run 1 with its stages", p)
	}
	for i, w := range want {
		got := p.Stages[i]
		got.HeldSeconds = 0
		w.Pending, w.AckPending = nil, nil
		if !equalStage(got, w) {
			t.Errorf("stopped, stage %d:\n got %s\nwant %s", i, show(got), show(w))
		}
	}
}

func equalStage(a, b StageSnapshot) bool {
	eqPtr := func(x, y *uint64) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	return a.Name == b.Name && a.Type == b.Type && a.Role == b.Role && slices.Equal(a.Inputs, b.Inputs) &&
		a.In == b.In && a.Out == b.Out && a.Filtered == b.Filtered && a.Errors == b.Errors &&
		a.DeadLetters == b.DeadLetters && a.Dropped == b.Dropped && eqPtr(a.Pending, b.Pending) &&
		eqPtr(a.AckPending, b.AckPending) && a.Held == b.Held && a.HeldSeconds == b.HeldSeconds &&
		a.Outages == b.Outages && a.HeldSince == nil && b.HeldSince == nil && a.HeldBy == b.HeldBy
}

func show(s StageSnapshot) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestPageHeaders: the page is served without the token, with a
// Content-Security-Policy that allows its inline script and style by
// hash and nothing inline besides.
func TestPageHeaders(t *testing.T) {
	_, base := serve(t, Options{Token: "s3cret"})
	resp, body := get(t, base+"/", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	script, err := inline(body, "script")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default-src 'self'", "script-src '" + hash(script) + "';", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q allows unsafe sources", csp)
	}
	// Offline and without markup from data: no address beyond the SVG
	// namespace, no HTML parsing of strings, no inline handlers.
	page := strings.ReplaceAll(string(body), `"http://www.w3.org/2000/svg"`, "")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", " onclick=", " onload=", "http://", "https://", "//cdn"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page has %q", bad)
		}
	}
}

// TestAPIStatusHeld: a sink whose destination refuses connections is held
// (not dead-lettered), and /api/status says so, with since when and why.
func TestAPIStatusHeld(t *testing.T) {
	s, base := serve(t, Options{Pipelines: []string{"down"}})
	startRun(t, s, fmt.Sprintf(heldPipeline, natstest.FreePort(t)))
	var post StageSnapshot
	natstest.WaitFor(t, time.Minute, "the sink held", func() bool {
		for _, p := range getStatus(t, base, "").Pipelines {
			for _, st := range p.Stages {
				if st.Name == "post" {
					post = st
				}
			}
		}
		return post.Held
	})
	if post.HeldSince == nil || post.HeldBy == "" || post.Outages != 1 || post.DeadLetters != 0 {
		t.Errorf("held sink: %s; want held since a time, by an error, in 1 outage, no dead letters", show(post))
	}
}

// heldPipeline posts to 127.0.0.1 on a port (%d) where nothing listens.
const heldPipeline = `
name: down
stages:
  - name: make
    source: generate
    with: {count: 5, template: '{"n": seq}'}
  - name: post
    sink: http
    max_deliver: 2
    backoff: [10ms]
    with: {url: 'http://127.0.0.1:%d/', retries: 0, timeout: 2s}
`
