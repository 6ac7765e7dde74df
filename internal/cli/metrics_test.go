package cli

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/tlstest"
)

// boundedPipeline writes 300 records, through a map, to discard.
const boundedPipeline = `name: bounded
stages:
  - {name: gen, source: generate, with: {count: 300, template: '{"n": seq}'}}
  - {name: double, transform: map, with: {expr: '{"n": n * 2}'}}
  - {name: out, sink: discard}
`

// TestRunHTTPEveryMetric: a run with --http exports every per-batch
// metric and the embedded server's figures; a bounded pipeline's
// end-to-end histogram counts each record written once, also after its
// run ended (a second, unbounded pipeline keeps the process up).
func TestRunHTTPEveryMetric(t *testing.T) {
	dir := inEmptyDir(t)
	writeFile(t, dir, "bounded.yaml", boundedPipeline)
	writeFile(t, dir, "metered.yaml", metricsPipeline)
	port := natstest.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	stderr, stop := background(t, "run", "--http", strconv.Itoa(port), "bounded.yaml", "metered.yaml")

	var scrape string
	natstest.WaitFor(t, time.Minute, "the bounded pipeline's 300 records at its sink", func() bool {
		code, body := get(t, base+"/metrics", "")
		if code != http.StatusOK {
			return false
		}
		scrape = body
		v, _ := metricValue(t, body, "sluice_end_to_end_latency_seconds_count", `pipeline="bounded",stage="out"`)
		return v == 300
	})
	// Every sample below is there; a source has no write or end-to-end
	// figures.
	for _, want := range []struct {
		name, labels string
		min          float64
	}{
		{"sluice_stage_processing_seconds_count", `pipeline="bounded",stage="double"`, 1},
		{"sluice_stage_processing_seconds_count", `pipeline="bounded",stage="gen"`, 1},
		{"sluice_stage_batch_size_sum", `pipeline="bounded",stage="double"`, 300},
		{"sluice_stage_batch_size_sum", `pipeline="bounded",stage="out"`, 300},
		{"sluice_stage_retries_total", `pipeline="bounded",stage="double"`, 0},
		{"sluice_sink_write_seconds_count", `pipeline="bounded",stage="out"`, 1},
		{"sluice_end_to_end_latency_seconds_sum", `pipeline="bounded",stage="out"`, 0},
		{"sluice_end_to_end_latency_seconds_bucket", `pipeline="bounded",stage="out",le="+Inf"`, 300},
	} {
		v, ok := metricValue(t, scrape, want.name, want.labels)
		if !ok || v < want.min {
			t.Errorf("%s{%s} = %v (present %v), want at least %v", want.name, want.labels, v, ok, want.min)
		}
	}
	if _, ok := metricValue(t, scrape, "sluice_sink_write_seconds_count", `pipeline="bounded",stage="gen"`); ok {
		t.Error("sink write figures for a source")
	}
	for _, name := range []string{"sluice_server_jetstream_storage_bytes", "sluice_server_jetstream_streams", "sluice_server_jetstream_ready"} {
		if !strings.Contains(scrape, "\n"+name+" ") {
			t.Errorf("/metrics has no %s of the embedded server", name)
		}
	}
	// Once the bounded pipeline's run has ended, /readyz says so, and its
	// histograms stay.
	natstest.WaitFor(t, time.Minute, "/readyz to name the bounded pipeline stopped", func() bool {
		code, body := get(t, base+"/readyz", "")
		return code == http.StatusServiceUnavailable && body == "pipeline bounded: stopped\n"
	})
	_, scrape = get(t, base+"/metrics", "")
	if v, _ := metricValue(t, scrape, "sluice_end_to_end_latency_seconds_count", `pipeline="bounded",stage="out"`); v != 300 {
		t.Errorf("end-to-end count after the run ended: %v, want 300", v)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// TestWorkerHTTP: `sluice worker --http` serves the deployed pipeline's
// metrics with the worker label, and /readyz answers 200 while it runs
// and after the pipeline is undeployed.
func TestWorkerHTTP(t *testing.T) {
	dir := inEmptyDir(t)
	url := natstest.Server(t).ClientURL()
	p := writeFile(t, dir, "metered.yaml", metricsPipeline)
	port := natstest.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	stderr, stop := background(t, "worker", "--nats", url, "--id", "w7", "--http", strconv.Itoa(port))
	natstest.WaitFor(t, time.Minute, "/healthz", func() bool { code, _ := get(t, base+"/healthz", ""); return code == http.StatusOK })
	if code, _, errOut := sluice(t, "deploy", "--nats", url, p); code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, errOut)
	}
	const labels = `pipeline="metered",stage="out",worker="w7"`
	natstest.WaitFor(t, time.Minute, "the worker's sink metrics", func() bool {
		_, body := get(t, base+"/metrics", "")
		v, _ := metricValue(t, body, "sluice_end_to_end_latency_seconds_count", labels)
		n, _ := metricValue(t, body, "sluice_stage_received_total", labels)
		return v > 0 && n > 0
	})
	if code, body := get(t, base+"/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz while the pipeline runs: %d %q", code, body)
	}
	if code, _, errOut := sluice(t, "undeploy", "--nats", url, "metered"); code != 0 {
		t.Fatalf("undeploy: exit %d: %s", code, errOut)
	}
	natstest.WaitFor(t, time.Minute, "the pipeline's counts to leave /metrics", func() bool {
		_, body := get(t, base+"/metrics", "")
		_, ok := metricValue(t, body, "sluice_stage_received_total", labels)
		return !ok
	})
	if code, body := get(t, base+"/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz after the undeploy: %d %q", code, body)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// TestServerHTTP: `sluice server --http` over TLS serves the server's
// JetStream figures and the Go collector on /metrics, and /readyz once
// JetStream is ready; a certificate without its key is a usage error.
func TestServerHTTP(t *testing.T) {
	dir := inEmptyDir(t)
	files := tlstest.New(t)
	port := natstest.FreePort(t)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlstest.Pool(t, files.CA)}}}
	fetch := func(path string) (int, string) {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	code, _, errOut := sluice(t, "server", "--store-dir", dir+"/bad", "--listen", fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t)),
		"--http", strconv.Itoa(port), "--http-tls-cert", files.ServerCert)
	if code != ExitUsage || !strings.Contains(errOut, "TLS") {
		t.Errorf("server --http-tls-cert without the key: exit %d, %q; want %d", code, errOut, ExitUsage)
	}

	stderr, stop := background(t, "server", "--store-dir", dir+"/store", "--listen", fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t)),
		"--http", strconv.Itoa(port), "--http-tls-cert", files.ServerCert, "--http-tls-key", files.ServerKey)
	natstest.WaitFor(t, time.Minute, "/readyz 200 over TLS", func() bool { code, _ := fetch("/readyz"); return code == http.StatusOK })
	code, body := fetch("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %q", code, body)
	}
	for _, want := range []string{"\nsluice_server_jetstream_ready 1\n", "\nsluice_server_jetstream_storage_bytes ", "\nsluice_server_jetstream_streams ", "\ngo_goroutines ", "\nprocess_start_time_seconds "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", strings.TrimSpace(want))
		}
	}
	for _, path := range []string{"/healthz", "/", "/api/status"} {
		if code, body := fetch(path); code != http.StatusOK {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
