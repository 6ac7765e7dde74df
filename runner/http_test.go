package runner_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
)

// Records posted to an http source reach the sink; the answer is 202 once
// they are stored, a retry with the same Idempotency-Key is stored once,
// and the server is gone when the run ends.
func TestRunHTTPSource(t *testing.T) {
	e := newEnv(t)
	addr := freeAddr(t)
	const token = "t0ken-from-env"
	p, err := pipeline.Parse("ingest.yaml", []byte(`
name: ingest
stages:
  - name: in
    source: http
    with:
      listen: `+addr+`
      path: /events
      format: jsonl
      token: ${INGEST_TOKEN}
  - name: got
    sink: collect
`), pipeline.Options{Registry: e.reg, LookupEnv: func(name string) (string, bool) {
		if name == "INGEST_TOKEN" {
			return token, true
		}
		return "", false
	}})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var sum *runner.Summary
	go func() {
		var err error
		sum, err = runner.Run(runCtx, e.nc, p, runner.Options{Registry: e.reg, StopTimeout: 10 * time.Second})
		done <- err
	}()

	client := &http.Client{Timeout: time.Minute}
	defer client.CloseIdleConnections()
	base := "http://" + addr
	if err := waitHTTPReady(ctx, client, base+"/healthz"); err != nil {
		stop()
		<-done
		t.Fatal(err)
	}
	auth := map[string]string{"Authorization": "Bearer " + token}
	keyed := map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": "req-1"}
	for _, r := range []struct {
		name   string
		body   string
		header map[string]string
		want   int
	}{
		{"two records", "{\"n\": 1}\n{\"n\": 2}\n", keyed, http.StatusAccepted},
		{"the same request again", "{\"n\": 1}\n{\"n\": 2}\n", keyed, http.StatusAccepted},
		{"no token", `{"n": 9}`, nil, http.StatusUnauthorized},
		{"bad JSON", `{"n": `, auth, http.StatusBadRequest},
		{"one more", `{"n": 3}`, auth, http.StatusAccepted},
	} {
		status, body, err := httpCall(ctx, client, http.MethodPost, base+"/events", r.body, r.header)
		if err != nil || status != r.want {
			stop()
			<-done
			t.Fatalf("%s: answer %d %q, %v; want %d", r.name, status, body, err, r.want)
		}
	}
	// The stream hands records over in order: once the last one is in,
	// a duplicate stored before it would be too.
	natstest.WaitFor(t, time.Minute, "the last record", func() bool {
		return slices.Contains(e.c.sorted("got"), `{"n": 3}`)
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if got, want := e.c.sorted("got"), []string{`{"n": 1}`, `{"n": 2}`, `{"n": 3}`}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if st := stageSum(t, sum, "in"); st.In != 5 {
		t.Errorf("source in: %d, want 5 (a request of two records twice, one of one)", st.In)
	}
	client.CloseIdleConnections()
	if _, _, err := httpCall(context.Background(), client, http.MethodGet, base+"/healthz", "", nil); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("after the run, the server still answers: %v", err)
	}
}
