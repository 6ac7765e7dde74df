package http

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// received is one request a test receiver got.
type received struct {
	method, body, key, contentType, custom string
	at                                     time.Time
}

// receiver is an HTTP endpoint on loopback that records what it gets and
// answers as answer says; attempt counts the requests with the same
// Idempotency-Key so far, from 1.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	tries  map[string]int
	answer func(w http.ResponseWriter, r *http.Request, body string, attempt int)
}

func newReceiver(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, body string, attempt int)) *receiver {
	rc := &receiver{tries: map[string]int{}, answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		key := r.Header.Get("Idempotency-Key")
		rc.mu.Lock()
		rc.got = append(rc.got, received{r.Method, string(b), key, r.Header.Get("Content-Type"), r.Header.Get("X-Custom"), time.Now()})
		rc.tries[key+"|"+string(b)]++
		n := rc.tries[key+"|"+string(b)]
		rc.mu.Unlock()
		if rc.answer == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		rc.answer(w, r, string(b), n)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *receiver) bodies() []string {
	var out []string
	for _, r := range rc.requests() {
		out = append(out, r.body)
	}
	return out
}

// withIDs gives each message the Nats-Msg-Id "id-<i>".
func withIDs(ms []*stages.Message) []*stages.Message {
	for i, m := range ms {
		m.Header = stages.Header{stages.HeaderMsgID: []string{"id-" + string(rune('a'+i))}}
	}
	return ms
}

// batchErrs returns the per-message errors of a Write: nil entries for a
// nil error, the BatchError's entries otherwise.
func batchErrs(t *testing.T, err error, n int) []error {
	t.Helper()
	if err == nil {
		return make([]error, n)
	}
	var be *stages.BatchError
	if !errors.As(err, &be) || len(be.Errs) != n {
		t.Fatalf("Write: %v, want nil or a BatchError of %d", err, n)
	}
	return be.Errs
}

func TestHTTPSinkWrite(t *testing.T) {
	fast := map[string]any{"backoff_min": "1ms", "backoff_max": "5ms"}
	with := func(extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range fast {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		params   map[string]any
		records  []string
		answer   func(w http.ResponseWriter, r *http.Request, body string, attempt int)
		want     []string // outcome of each record
		wantReqs []string // bodies received, in order
		wantErr  string   // in the first error
		check    func(t *testing.T, got []received)
	}{
		{
			name:     "one request per record",
			params:   with(map[string]any{"headers": map[string]any{"X-Custom": "yes"}}),
			records:  []string{`{"n":1}`, `{"n":2}`},
			want:     []string{"ok", "ok"},
			wantReqs: []string{`{"n":1}`, `{"n":2}`},
			check: func(t *testing.T, got []received) {
				for i, r := range got {
					if r.method != http.MethodPost || r.contentType != "application/json" || r.custom != "yes" {
						t.Errorf("request %d: %+v", i, r)
					}
				}
				if got[0].key != "id-a" || got[1].key != "id-b" {
					t.Errorf("Idempotency-Key: %q, %q, want the message IDs", got[0].key, got[1].key)
				}
			},
		},
		{
			name:    "method and content type from the parameters",
			params:  with(map[string]any{"method": "PUT", "headers": map[string]any{"content-type": "text/plain"}}),
			records: []string{`not json`},
			want:    []string{"ok"}, wantReqs: []string{`not json`},
			check: func(t *testing.T, got []received) {
				if got[0].method != http.MethodPut || got[0].contentType != "text/plain" {
					t.Errorf("request: %+v", got[0])
				}
			},
		},
		{
			name:    "500 twice, then success",
			params:  with(nil),
			records: []string{`{"n":1}`},
			answer: func(w http.ResponseWriter, _ *http.Request, _ string, attempt int) {
				if attempt <= 2 {
					http.Error(w, "busy", http.StatusInternalServerError)
				}
			},
			want:     []string{"ok"},
			wantReqs: []string{`{"n":1}`, `{"n":1}`, `{"n":1}`},
			check: func(t *testing.T, got []received) {
				for _, r := range got {
					if r.key != "id-a" {
						t.Errorf("a retry changed the Idempotency-Key: %q", r.key)
					}
				}
			},
		},
		{
			name:    "500 beyond the retries goes back to the pipeline, with the rest of the batch untried",
			params:  with(map[string]any{"retries": 1}),
			records: []string{`{"n":1}`, `{"n":2}`},
			answer: func(w http.ResponseWriter, _ *http.Request, _ string, _ int) {
				http.Error(w, "down", http.StatusBadGateway)
			},
			want:     []string{"outage", "outage"},
			wantReqs: []string{`{"n":1}`, `{"n":1}`},
			wantErr:  "502",
		},
		{
			name:    "408 is retried",
			params:  with(nil),
			records: []string{`{"n":1}`},
			answer: func(w http.ResponseWriter, _ *http.Request, _ string, attempt int) {
				if attempt == 1 {
					w.WriteHeader(http.StatusRequestTimeout)
				}
			},
			want: []string{"ok"}, wantReqs: []string{`{"n":1}`, `{"n":1}`},
		},
		{
			name:    "400 is permanent, with the status and the start of the answer",
			params:  with(nil),
			records: []string{`{"n":1}`, `{"bad":true}`, `{"n":3}`},
			answer: func(w http.ResponseWriter, _ *http.Request, body string, _ int) {
				if strings.Contains(body, "bad") {
					http.Error(w, "field n is required\nsee the docs", http.StatusBadRequest)
				}
			},
			want:     []string{"ok", "permanent", "ok"},
			wantReqs: []string{`{"n":1}`, `{"bad":true}`, `{"n":3}`},
			wantErr:  "400 Bad Request: field n is required see the docs",
		},
		{
			name:    "a redirect that would become a GET is permanent",
			params:  with(nil),
			records: []string{`{"n":1}`},
			answer: func(w http.ResponseWriter, r *http.Request, _ string, _ int) {
				http.Redirect(w, r, "/elsewhere", http.StatusFound)
			},
			want: []string{"permanent"}, wantReqs: []string{`{"n":1}`}, wantErr: "redirect",
		},
		{
			name:    "429 with Retry-After waits as asked",
			params:  with(map[string]any{"backoff_max": "2s"}),
			records: []string{`{"n":1}`},
			answer: func(w http.ResponseWriter, _ *http.Request, _ string, attempt int) {
				if attempt == 1 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(http.StatusTooManyRequests)
				}
			},
			want: []string{"ok"}, wantReqs: []string{`{"n":1}`, `{"n":1}`},
			check: func(t *testing.T, got []received) {
				// A lower bound only: the sink must not retry sooner.
				if gap := got[1].at.Sub(got[0].at); gap < 900*time.Millisecond {
					t.Errorf("retried %s after a 429 with Retry-After: 1", gap)
				}
			},
		},
		{
			name:    "Retry-After longer than backoff_max goes back to the pipeline at once",
			params:  with(nil),
			records: []string{`{"n":1}`},
			answer: func(w http.ResponseWriter, _ *http.Request, _ string, _ int) {
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(http.StatusServiceUnavailable)
			},
			want: []string{"outage"}, wantReqs: []string{`{"n":1}`}, wantErr: "Retry-After",
		},
		{
			name:     "batch: JSON arrays of max_batch records",
			params:   with(map[string]any{"batch": true, "max_batch": 2}),
			records:  []string{`{"n":1}`, `{"n":2}`, `nope`, `{"n":3}`},
			want:     []string{"ok", "ok", "permanent", "ok"},
			wantReqs: []string{`[{"n":1},{"n":2}]`, `[{"n":3}]`},
			wantErr:  "not valid JSON",
			check: func(t *testing.T, got []received) {
				if !strings.HasPrefix(got[0].key, "batch-") || got[0].key == got[1].key {
					t.Errorf("Idempotency-Keys %q, %q: want one per batch", got[0].key, got[1].key)
				}
			},
		},
		{
			name:    "batch: a retry keeps the key",
			params:  with(map[string]any{"batch": true}),
			records: []string{`{"n":1}`, `{"n":2}`},
			answer: func(w http.ResponseWriter, _ *http.Request, _ string, attempt int) {
				if attempt == 1 {
					w.WriteHeader(http.StatusInternalServerError)
				}
			},
			want:     []string{"ok", "ok"},
			wantReqs: []string{`[{"n":1},{"n":2}]`, `[{"n":1},{"n":2}]`},
			check: func(t *testing.T, got []received) {
				if got[0].key == "" || got[0].key != got[1].key {
					t.Errorf("Idempotency-Keys %q, %q: want the same", got[0].key, got[1].key)
				}
			},
		},
		{
			name:    "batch: a refused request dead-letters its records",
			params:  with(map[string]any{"batch": true, "max_batch": 2}),
			records: []string{`{"n":1}`, `{"bad":1}`, `{"n":3}`},
			answer: func(w http.ResponseWriter, _ *http.Request, body string, _ int) {
				if strings.Contains(body, "bad") {
					w.WriteHeader(http.StatusUnprocessableEntity)
				}
			},
			want:     []string{"permanent", "permanent", "ok"},
			wantReqs: []string{`[{"n":1},{"bad":1}]`, `[{"n":3}]`},
			wantErr:  "422",
		},
		{
			name:    "no answer within timeout is retried",
			params:  with(map[string]any{"timeout": "50ms", "retries": 0}),
			records: []string{`{"n":1}`},
			answer: func(_ http.ResponseWriter, r *http.Request, _ string, _ int) {
				<-r.Context().Done()
			},
			want: []string{"outage"}, wantReqs: []string{`{"n":1}`}, wantErr: "timeout",
		},
		{
			name:     "concurrent requests",
			params:   with(map[string]any{"concurrency": 4}),
			records:  []string{`1`, `2`, `3`, `4`, `5`, `6`, `7`, `8`, `9`},
			want:     []string{"ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"},
			wantReqs: []string{`1`, `2`, `3`, `4`, `5`, `6`, `7`, `8`, `9`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.answer)
			params := tc.params
			params["url"] = rc.srv.URL + "/in?secret=x"
			sk := stagetest.NewSink(t, "http", params, stages.Info{})
			err := sk.Write(context.Background(), withIDs(stagetest.Msgs(tc.records...)))
			errs := batchErrs(t, err, len(tc.records))
			var got []string
			var first error
			for _, e := range errs {
				got = append(got, outcome(e))
				if e != nil && first == nil {
					first = e
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("outcomes %q, want %q (errors %v)", got, tc.want, errs)
			}
			if tc.wantErr != "" && (first == nil || !strings.Contains(first.Error(), tc.wantErr)) {
				t.Errorf("error %v, want it to contain %q", first, tc.wantErr)
			}
			if first != nil && strings.Contains(first.Error(), "secret") {
				t.Errorf("the error shows the URL's query: %v", first)
			}
			bodies := rc.bodies()
			if _, ok := params["concurrency"]; ok {
				slices.Sort(bodies)
			}
			if !slices.Equal(bodies, tc.wantReqs) {
				t.Errorf("requests %q, want %q", bodies, tc.wantReqs)
			}
			if tc.check != nil && len(rc.requests()) == len(tc.wantReqs) {
				tc.check(t, rc.requests())
			}
		})
	}
}

// outcome is stagetest.Outcome, telling an outage ("outage") from another
// error that may be retried ("retry").
func outcome(err error) string {
	if stages.IsOutage(err) {
		return "outage"
	}
	return stagetest.Outcome(err)
}

// A network error is retried, then reported as an outage.
func TestHTTPSinkNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	sk := stagetest.NewSink(t, "http", map[string]any{"url": "http://" + addr + "/", "retries": 2, "backoff_min": "1ms", "backoff_max": "2ms"}, stages.Info{})
	err = sk.Write(context.Background(), stagetest.Msgs(`{"n":1}`))
	errs := batchErrs(t, err, 1)
	if outcome(errs[0]) != "outage" || !strings.Contains(errs[0].Error(), "3 attempts") {
		t.Errorf("got %v, want an outage after 3 attempts", errs[0])
	}
}

// Close cancels a retry that waits, and Write after Close fails.
func TestHTTPSinkCloseCancelsRetries(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ string, _ int) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	s := stagetest.Lookup(t, stages.RoleSink, "http")
	sk, err := s.NewSink(stagetest.Parse(t, s, map[string]any{"url": rc.srv.URL, "retries": 5, "backoff_min": "1h", "backoff_max": "1h"}), stages.Info{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sk.Write(context.Background(), stagetest.Msgs(`{"n":1}`)) }()
	waitUntil(t, "the first attempt", func() bool { return len(rc.requests()) == 1 })
	if err := sk.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	errs := batchErrs(t, <-done, 1)
	if o := outcome(errs[0]); o != "retry" && o != "outage" {
		t.Errorf("Write cut off by Close: %v, want an error to retry", errs[0])
	}
	if err := sk.Write(context.Background(), stagetest.Msgs(`{"n":2}`)); !errors.Is(err, stages.ErrSinkClosed) {
		t.Errorf("Write after Close: %v", err)
	}
}

// waitUntil polls cond until it holds, for 10s at most.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHTTPSinkCheck(t *testing.T) {
	s := stagetest.Lookup(t, stages.RoleSink, "http")
	for _, tc := range []struct {
		raw   map[string]any
		param string
	}{
		{map[string]any{}, "url"},
		{map[string]any{"url": "ftp://x/"}, "url"},
		{map[string]any{"url": "http:///path"}, "url"},
		{map[string]any{"url": "http://x", "method": "GET"}, "method"},
		{map[string]any{"url": "http://x", "headers": map[string]any{"Bad Name": "v"}}, "headers"},
		{map[string]any{"url": "http://x", "headers": map[string]any{"idempotency-key": "v"}}, "headers"},
		{map[string]any{"url": "http://x", "max_batch": 10}, "max_batch"},
		{map[string]any{"url": "http://x", "batch": true, "max_batch": 0}, "max_batch"},
		{map[string]any{"url": "http://x", "timeout": "0s"}, "timeout"},
		{map[string]any{"url": "http://x", "retries": -1}, "retries"},
		{map[string]any{"url": "http://x", "backoff_min": "0s"}, "backoff_min"},
		{map[string]any{"url": "http://x", "backoff_min": "2s", "backoff_max": "1s"}, "backoff_max"},
		{map[string]any{"url": "http://x", "concurrency": 0}, "concurrency"},
	} {
		_, errs := s.ParseParams(tc.raw)
		var pe *stages.ParamError
		if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tc.param || !errors.Is(errs[0], stages.ErrInvalidParam) {
			t.Errorf("%v: got %v, want one error on %s", tc.raw, errs, tc.param)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0},
		{"Mon, 02 Jan 2006 15:04:05 GMT", 0}, // in the past
	} {
		if got := retryAfter(tc.in); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got := retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); got < 59*time.Minute {
		t.Errorf("an HTTP date an hour ahead: %s", got)
	}
}

// What the endpoint does decides whether a failed record is an outage of
// the endpoint (held by the pipeline until it is back) or a record it
// refuses (dead-lettered): every answer is given once, with no retries.
func TestHTTPSinkErrorClasses(t *testing.T) {
	answering := func(code int, header ...string) func(*testing.T) string {
		return func(t *testing.T) string {
			rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ string, _ int) {
				for i := 0; i+1 < len(header); i += 2 {
					w.Header().Set(header[i], header[i+1])
				}
				http.Error(w, "the body says why", code)
			})
			return rc.srv.URL
		}
	}
	for _, tc := range []struct {
		name    string
		url     func(t *testing.T) string
		timeout string
		want    string
		wantErr string
	}{
		{"connection refused", func(t *testing.T) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln.Close()
			return "http://" + ln.Addr().String()
		}, "", "outage", "refused"},
		{"connection reset", func(t *testing.T) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}
			}()
			return "http://" + ln.Addr().String()
		}, "", "outage", ""},
		{"no answer within the timeout", func(t *testing.T) string {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
			t.Cleanup(func() { close(release); srv.Close() })
			return srv.URL
		}, "50ms", "outage", "timeout"},
		{"TLS handshake", func(t *testing.T) string {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake refused, as expected
			srv.StartTLS()
			t.Cleanup(srv.Close)
			return srv.URL // a certificate the sink does not trust
		}, "", "outage", "certificate"},
		{"500", answering(http.StatusInternalServerError), "", "outage", "500"},
		{"502", answering(http.StatusBadGateway), "", "outage", "502"},
		{"503", answering(http.StatusServiceUnavailable), "", "outage", "503"},
		{"408", answering(http.StatusRequestTimeout), "", "outage", "408"},
		{"429", answering(http.StatusTooManyRequests), "", "outage", "429"},
		{"503 with Retry-After", answering(http.StatusServiceUnavailable, "Retry-After", "3600"), "", "outage", "503"},
		{"400", answering(http.StatusBadRequest), "", "permanent", "400 Bad Request: the body says why"},
		{"404", answering(http.StatusNotFound), "", "permanent", "404"},
		{"409", answering(http.StatusConflict), "", "permanent", "409"},
		{"422", answering(http.StatusUnprocessableEntity), "", "permanent", "422"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params := map[string]any{"url": tc.url(t) + "/in", "retries": 0, "backoff_min": "1ms", "backoff_max": "2ms"}
			if tc.timeout != "" {
				params["timeout"] = tc.timeout
			}
			sk := stagetest.NewSink(t, "http", params, stages.Info{})
			errs := batchErrs(t, sk.Write(context.Background(), stagetest.Msgs(`{"n":1}`)), 1)
			if got := outcome(errs[0]); got != tc.want || !strings.Contains(errs[0].Error(), tc.wantErr) {
				t.Errorf("got %s: %v; want %s containing %q", got, errs[0], tc.want, tc.wantErr)
			}
		})
	}
}
