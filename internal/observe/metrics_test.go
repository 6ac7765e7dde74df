package observe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/tlstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// failOnce fails, on its first delivery, each record whose n is a
// multiple of every_n.
type failOnce struct{ every int }

func (f *failOnce) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	if n := int(rec["n"].(int64)); n%f.every == 0 && in.Meta.Deliveries == 1 {
		return out, fmt.Errorf("first delivery of %d", n)
	}
	// A new message, not in itself: the read time must be inherited.
	return append(out, stages.NewValueMessage(rec)), nil
}
func (f *failOnce) Close(context.Context) error { return nil }

// serveOn starts s and stops it when the test ends.
func serveOn(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// scrape returns the body of GET url with client c.
func scrape(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(body)
}

// sample returns the value of the sample name{labels} in a scrape, and
// whether it is there.
func sample(t *testing.T, body, name, labels string) (float64, bool) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// TestObserverMetrics runs a bounded pipeline whose transform fails every
// tenth record once, with the server's Observer, and checks the per-batch
// metrics against what the run did: one end-to-end latency per record
// written, the retries, the batch sizes adding up to the records.
func TestObserverMetrics(t *testing.T) {
	const records = 200
	nc := natstest.Connect(t, natstest.Server(t))
	reg := builtin.NewRegistry()
	if err := reg.Register(stages.Spec{
		Name:    "fail_once",
		Summary: "fails every tenth record on its first delivery",
		NewTransform: func(stages.Params, stages.Info) (stages.Transform, error) {
			return &failOnce{every: 10}, nil
		},
	}); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Parse("obs.yaml", []byte(fmt.Sprintf(`
name: obs
settings: {backoff: [5ms]}
stages:
  - {name: gen, source: generate, with: {count: %d, template: '{"n": seq}'}}
  - {name: work, transform: fail_once}
  - {name: out, sink: discard}
`, records)), pipeline.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	s, base := serve(t, Options{Pipelines: []string{"obs"}})
	sum, err := runner.Run(context.Background(), nc, p, runner.Options{Registry: reg, Observer: s.Observer(), Started: s.Started})
	if err != nil {
		t.Fatal(err)
	}
	written := 0
	for _, st := range sum.Stages {
		if st.Name == "out" {
			written = int(st.Out)
		}
	}
	if written != records {
		t.Fatalf("sink wrote %d records, want %d", written, records)
	}

	body := scrape(t, http.DefaultClient, base+"/metrics")
	at := func(stage string) string { return `pipeline="obs",stage="` + stage + `"` }
	for _, tt := range []struct {
		name, stage string
		check       func(float64) bool
		want        string
	}{
		{metricEndToEnd + "_count", "out", func(v float64) bool { return v == records }, "one per record written"},
		{metricEndToEnd + "_sum", "out", func(v float64) bool { return v > 0 && v < records*60 }, "positive, under a minute a record"},
		{metricRetries, "work", func(v float64) bool { return v >= records/10 }, "at least the records failed once"},
		{metricBatchSize + "_sum", "work", func(v float64) bool { return v >= records }, "every record, retries on top"},
		{metricBatchSize + "_sum", "out", func(v float64) bool { return v == records }, "every record once"},
		{metricBatchSize + "_sum", "gen", func(v float64) bool { return v >= records }, "every record read"},
		{metricProcessing + "_count", "work", func(v float64) bool { return v >= 1 }, "a batch at least"},
		{metricProcessing + "_count", "gen", func(v float64) bool { return v >= 1 }, "a batch at least"},
		{metricSinkWrite + "_count", "out", func(v float64) bool { return v >= 1 }, "a write at least"},
	} {
		v, ok := sample(t, body, tt.name, at(tt.stage))
		if !ok || !tt.check(v) {
			t.Errorf("%s{%s} = %v (present %v), want %s", tt.name, at(tt.stage), v, ok, tt.want)
		}
	}
	if v, _ := sample(t, body, metricRetries, at("out")); v != 0 {
		t.Errorf("%s = %v for the sink, which never failed", metricRetries, v)
	}
	if _, ok := sample(t, body, metricEndToEnd+"_count", at("work")); ok {
		t.Errorf("%s for a transform", metricEndToEnd)
	}
	if strings.Contains(body, "worker=") {
		t.Error("a worker label outside a worker")
	}
}

// TestWorkerLabel: with Options.Worker, every stage metric carries the
// label worker, and /readyz does not wait for pipelines nor keep stopped
// ones.
func TestWorkerLabel(t *testing.T) {
	s, base := serve(t, Options{Worker: "w1"})
	so := s.Observer().Stage("p", "out", stages.RoleSink)
	so.Batch(runner.BatchFigures{Records: 3, Duration: time.Millisecond, Latencies: []time.Duration{time.Second}})
	so.Written(time.Millisecond, 3)
	body := scrape(t, http.DefaultClient, base+"/metrics")
	for _, name := range []string{metricProcessing + "_count", metricBatchSize + "_count", metricSinkWrite + "_count", metricEndToEnd + "_count"} {
		if v, ok := sample(t, body, name, `pipeline="p",stage="out",worker="w1"`); !ok || v != 1 {
			t.Errorf("%s with the worker label: %v, %v; want 1", name, v, ok)
		}
	}
	if code, msg := fetchCode(t, http.DefaultClient, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz of a worker without pipelines: %d %q, want 200", code, msg)
	}
	s.Stopped("p")
	if code, msg := fetchCode(t, http.DefaultClient, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz of a worker after a pipeline was undeployed: %d %q, want 200", code, msg)
	}
}

// fetchCode returns the status and body of GET url.
func fetchCode(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestNATSServerMetrics: /readyz waits for the embedded server; once it
// is watched, /metrics has its JetStream figures and /readyz answers for
// its JetStream.
func TestNATSServerMetrics(t *testing.T) {
	emb, err := server.Start(server.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	nc, err := emb.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := nc.Request("$JS.API.STREAM.CREATE.S", []byte(`{"name":"S","subjects":["s.>"]}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := nc.Request("s.x", []byte("0123456789"), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	s, base := serve(t, Options{WaitNATS: true})
	if code, msg := fetchCode(t, http.DefaultClient, base+"/readyz"); code != http.StatusServiceUnavailable || msg != "nats server: not started\n" {
		t.Errorf("/readyz before the server is given: %d %q, want 503 saying it has not started", code, msg)
	}
	s.WatchNATS(emb)
	if code, msg := fetchCode(t, http.DefaultClient, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %q, want 200", code, msg)
	}
	body := scrape(t, http.DefaultClient, base+"/metrics")
	for _, tt := range []struct {
		name string
		want func(float64) bool
	}{
		{"sluice_server_jetstream_streams", func(v float64) bool { return v == 1 }},
		{"sluice_server_jetstream_messages", func(v float64) bool { return v == 5 }},
		{"sluice_server_jetstream_storage_bytes", func(v float64) bool { return v > 50 }},
		{"sluice_server_jetstream_ready", func(v float64) bool { return v == 1 }},
	} {
		m := regexp.MustCompile(`(?m)^` + tt.name + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Errorf("/metrics has no %s", tt.name)
			continue
		}
		if v, _ := strconv.ParseFloat(m[1], 64); !tt.want(v) {
			t.Errorf("%s = %v", tt.name, v)
		}
	}
	emb.Shutdown()
	if code, msg := fetchCode(t, http.DefaultClient, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(msg, "JetStream not ready") {
		t.Errorf("/readyz after the server stopped: %d %q, want 503 naming JetStream", code, msg)
	}
}

// TestTLS: with a certificate, the endpoint speaks HTTPS only; a
// certificate without its key is refused.
func TestTLS(t *testing.T) {
	files := tlstest.New(t)
	s, err := Listen(Options{Addr: "127.0.0.1:0", TLSCert: files.ServerCert, TLSKey: files.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, s)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlstest.Pool(t, files.CA)}}}
	if code, body := fetchCode(t, c, "https://"+s.Addr()+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("https /healthz: %d %q", code, body)
	}
	if !strings.Contains(scrape(t, c, "https://"+s.Addr()+"/metrics"), "go_goroutines") {
		t.Error("https /metrics without the Go collector")
	}
	if resp, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS endpoint")
		}
	}
	for _, o := range []Options{
		{Addr: "127.0.0.1:0", TLSCert: files.ServerCert},
		{Addr: "127.0.0.1:0", TLSCert: files.ServerCert, TLSKey: files.ClientKey},
	} {
		if _, err := Listen(o); !errors.Is(err, ErrTLS) {
			t.Errorf("Listen(%+v) = %v, want ErrTLS", o, err)
		}
	}
}

// BenchmarkStageBatch is what the Prometheus side of observing costs a
// sink's batch of 2000 records, each with its end-to-end latency.
//
//	go test ./internal/observe -run XXX -bench StageBatch -benchmem
func BenchmarkStageBatch(b *testing.B) {
	m := newMetrics(prometheus.NewRegistry(), nil)
	so := m.Stage("p", "out", stages.RoleSink)
	lat := make([]time.Duration, 2000)
	for i := range lat {
		lat[i] = time.Duration(i) * time.Millisecond
	}
	f := runner.BatchFigures{Records: len(lat), Retries: 3, Duration: 5 * time.Millisecond, Latencies: lat}
	b.ReportAllocs()
	for b.Loop() {
		so.Batch(f)
		so.Written(time.Millisecond, len(lat))
	}
}
