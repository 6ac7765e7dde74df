package cli

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
)

// metricsPipeline generates records until it is stopped, maps and
// discards them.
const metricsPipeline = `name: metered
stages:
  - {name: gen, source: generate, with: {rate: 200}}
  - {name: double, transform: map, with: {expr: '{"n": seq * 2}'}}
  - {name: out, sink: discard}
`

// get returns the status and body of GET url, with the bearer token if
// one is given; status 0 if the request failed.
func get(t *testing.T, url, token string) (int, string) {
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
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// metricValue returns the value of the sample name{labels} in a scrape,
// and whether it is there.
func metricValue(t *testing.T, scrape, name, labels string) (float64, bool) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	m := re.FindStringSubmatch(scrape)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s{%s}: %v", name, labels, err)
	}
	return v, true
}

// TestRunHTTPMetrics: `sluice run --http PORT` serves, on loopback,
// /healthz, /readyz once the stages run, and /metrics whose counts grow
// while the pipeline runs; /readyz says 503 once the run has stopped.
func TestRunHTTPMetrics(t *testing.T) {
	dir := inEmptyDir(t)
	writeFile(t, dir, "p.yaml", metricsPipeline)
	port := natstest.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	stderr, stop := background(t, "run", "--http", strconv.Itoa(port), "p.yaml")

	natstest.WaitFor(t, time.Minute, "/readyz 200", func() bool {
		code, _ := get(t, base+"/readyz", "")
		return code == http.StatusOK
	})
	if code, body := get(t, base+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz: %d %q, want 200", code, body)
	}

	const labels = `pipeline="metered",stage="double"`
	sent := func() float64 {
		code, body := get(t, base+"/metrics", "")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d %q", code, body)
		}
		v, _ := metricValue(t, body, "sluice_stage_sent_total", labels)
		return v
	}
	var first float64
	natstest.WaitFor(t, time.Minute, "the map stage to send", func() bool { first = sent(); return first > 0 })
	natstest.WaitFor(t, time.Minute, "the map stage's sent count to grow", func() bool { return sent() > first })

	_, scrape := get(t, base+"/metrics", "")
	for _, want := range []struct{ name, labels string }{
		{"sluice_stage_received_total", labels},
		{"sluice_stage_filtered_total", labels},
		{"sluice_stage_errors_total", labels},
		{"sluice_stage_dead_letters_total", labels},
		{"sluice_stage_pending_messages", labels},
		{"sluice_stage_ack_pending_messages", labels},
		{"sluice_stage_sent_total", `pipeline="metered",stage="gen"`},
		{"sluice_stage_received_total", `pipeline="metered",stage="out"`},
	} {
		if _, ok := metricValue(t, scrape, want.name, want.labels); !ok {
			t.Errorf("/metrics has no %s{%s}", want.name, want.labels)
		}
	}
	if _, ok := metricValue(t, scrape, "sluice_stage_pending_messages", `pipeline="metered",stage="gen"`); ok {
		t.Error("/metrics has a backlog for the source, which has no input")
	}
	for _, want := range []string{"\ngo_goroutines ", "\nprocess_start_time_seconds "} {
		if !strings.Contains(scrape, want) {
			t.Errorf("/metrics has no %s", strings.TrimSpace(want))
		}
	}

	if code := stop(); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if code, _ := get(t, base+"/healthz", ""); code != 0 {
		t.Errorf("/healthz after the process stopped: %d, want no answer", code)
	}
}

// TestRunHTTPBeyondLoopback: --http beyond loopback refuses to start
// without a token (or --insecure); with SLUICE_HTTP_TOKEN, /metrics
// requires the token while /healthz stays open.
func TestRunHTTPBeyondLoopback(t *testing.T) {
	dir := inEmptyDir(t)
	writeFile(t, dir, "p.yaml", metricsPipeline)

	code, _, stderr := sluice(t, "run", "--http", "0.0.0.0:0", "p.yaml")
	if code != ExitUsage || !strings.Contains(stderr, "needs a bearer token") || !strings.Contains(stderr, "SLUICE_HTTP_TOKEN") {
		t.Fatalf("run --http 0.0.0.0:0 without a token: exit %d, stderr %q; want exit %d asking for a token", code, stderr, ExitUsage)
	}

	t.Setenv("SLUICE_HTTP_TOKEN", "s3cret")
	port := natstest.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	out, stop := background(t, "run", "--http", fmt.Sprintf("0.0.0.0:%d", port), "p.yaml")
	natstest.WaitFor(t, time.Minute, "/readyz 200", func() bool {
		code, _ := get(t, base+"/readyz", "")
		return code == http.StatusOK
	})
	if code, _ := get(t, base+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", code)
	}
	if code, _ := get(t, base+"/metrics", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("/metrics with a wrong token: %d, want 401", code)
	}
	if code, body := get(t, base+"/metrics", "s3cret"); code != http.StatusOK || !strings.Contains(body, "sluice_stage_sent_total") {
		t.Errorf("/metrics with the token: %d, want 200 with the stage counts", code)
	}
	if code, _ := get(t, base+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz without the token: %d, want 200", code)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, out)
	}
}
