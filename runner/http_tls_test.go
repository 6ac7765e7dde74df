package runner_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/tlstest"
	"github.com/sluicehq/sluice/runner"
)

// One pipeline's http sink sends to another pipeline's http source over
// mutual TLS with a bearer token: every record arrives once.
func TestRunHTTPSinkToSourceMutualTLS(t *testing.T) {
	e := newEnv(t)
	f := tlstest.New(t)
	addr := freeAddr(t)
	const token = "mtls-run-t0ken"
	ingest := e.parse(t, fmt.Sprintf(`
name: ingest
stages:
  - name: in
    source: http
    with: {listen: '%s', path: /events, token: %s, tls_cert: '%s', tls_key: '%s', tls_client_ca: '%s'}
  - name: got
    sink: collect
`, addr, token, f.ServerCert, f.ServerKey, f.CA))
	forward := e.parse(t, fmt.Sprintf(`
name: forward
stages:
  - {name: gen, source: generate, with: {count: 20, template: '{"n": seq}'}}
  - name: post
    sink: http
    with:
      url: 'https://%s/events'
      headers: {Authorization: 'Bearer %s'}
      tls_ca: '%s'
      tls_cert: '%s'
      tls_key: '%s'
      concurrency: 4
`, addr, token, f.CA, f.ClientCert, f.ClientKey))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := runner.Run(runCtx, e.nc, ingest, runner.Options{Registry: e.reg, StopTimeout: 10 * time.Second})
		done <- err
	}()
	cert := tlstest.KeyPair(t, f.ClientCert, f.ClientKey)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: tlstest.Pool(t, f.CA), Certificates: []tls.Certificate{cert},
	}}}
	defer client.CloseIdleConnections()
	if err := waitHTTPReady(ctx, client, "https://"+addr+"/healthz"); err != nil {
		stop()
		<-done
		t.Fatal(err)
	}

	sum := e.run(t, ctx, forward)
	if st := stageSum(t, sum, "post"); st.Out != 20 || st.Errors != 0 || st.DeadLetters != 0 {
		t.Errorf("sink: %d out, %d errors, %d dead letters; want 20 out and no failure", st.Out, st.Errors, st.DeadLetters)
	}
	var want []string
	for i := range 20 { // seq counts from 0
		want = append(want, fmt.Sprintf(`{"n":%d}`, i))
	}
	natstest.WaitFor(t, time.Minute, "the records at the source's end", func() bool {
		return len(e.c.sorted("got")) >= len(want)
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("ingest run: %v", err)
	}
	got := e.c.sorted("got")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
