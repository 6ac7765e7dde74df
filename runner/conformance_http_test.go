package runner_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
)

// Conformance cases of the http source and the http sink.
//
// The http source refuses a bad request (bad JSON, a body over max_body, a
// wrong method) before anything of it enters the pipeline: the client is
// answered 4xx and nothing is dead-lettered, so its case has wantBad 0 and
// checks the refusals in feed. The http sink's bad input is a record that
// the receiver answers 400: it must become a dead letter.
func init() {
	conformanceCases = append(conformanceCases,
		conformanceCase{stages.RoleSource, "http", func(t *testing.T, e *conformanceEnv) conformanceStage {
			addr := freeAddr(t)
			base := "http://" + addr
			return conformanceStage{
				with: `{listen: '` + addr + `', path: /in, format: jsonl}`,
				feed: func(ctx context.Context, t *testing.T) error {
					client := &http.Client{Timeout: time.Minute}
					defer client.CloseIdleConnections()
					if err := waitHTTPReady(ctx, client, base+"/healthz"); err != nil {
						return err
					}
					for _, r := range []struct {
						method, body string
						want         int
					}{
						{http.MethodPost, "{\"n\": 1}\n{\"n\": 2}\n", http.StatusAccepted},
						{http.MethodPost, `{"n": 3}`, http.StatusAccepted},
						{http.MethodPost, "{\"n\": 4}\n{\"n\": \n", http.StatusBadRequest},
						{http.MethodGet, "", http.StatusMethodNotAllowed},
					} {
						status, body, err := httpCall(ctx, client, r.method, base+"/in", r.body, nil)
						if err != nil {
							return err
						}
						if status != r.want {
							return fmt.Errorf("%s %q: answer %d %s, want %d", r.method, r.body, status, body, r.want)
						}
					}
					return nil
				},
				want: 3,
				check: func(t *testing.T, got []string) {
					if want := []string{`{"n": 1}`, `{"n": 2}`, `{"n": 3}`}; !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleSink, "http", func(t *testing.T, e *conformanceEnv) conformanceStage {
			rc := newTestReceiver(t)
			return conformanceStage{
				with: `{url: '` + rc.srv.URL + `/in', retries: 1, backoff_min: 1ms, backoff_max: 10ms}`,
				good: []string{`{"n":1}`, `{"n":2}`},
				bad:  []string{`{"bad":true}`},
				check: func(t *testing.T, _ []string) {
					if got, want := rc.stored(), []string{`{"n":1}`, `{"n":2}`}; !slices.Equal(got, want) {
						t.Errorf("receiver stored %q, want %q", got, want)
					}
				},
			}
		}},
	)
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHTTPReady polls a readiness URL until it answers 200.
func waitHTTPReady(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if status, _, err := httpCall(ctx, client, http.MethodGet, url, "", nil); err == nil && status == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", url, ctx.Err())
		case <-time.After(10 * time.Millisecond): // polling, not ordering
		}
	}
}

// httpCall makes a request and returns the answer's status and body.
func httpCall(ctx context.Context, client *http.Client, method, url, body string, header map[string]string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// testReceiver is an HTTP endpoint on loopback that stores the records
// posted to it, once per Idempotency-Key, and refuses with 400 a record
// holding "bad".
type testReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]string // key -> body
}

func newTestReceiver(t *testing.T) *testReceiver {
	rc := &testReceiver{seen: map[string]string{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if strings.Contains(string(b), "bad") {
			http.Error(w, "bad record", http.StatusBadRequest)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			http.Error(w, "no Idempotency-Key", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.seen[key] = string(b)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// stored returns the bodies stored, sorted.
func (rc *testReceiver) stored() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, b := range rc.seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out
}
