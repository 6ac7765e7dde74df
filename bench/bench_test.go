package main

// Benchmark wrappers: each runs b.N records through the same scenario
// functions as `go run ./bench`, on one embedded server shared by the
// test binary, and reports msgs/s. Give the count explicitly:
//
//	go test ./bench/ -run XXX -bench . -benchtime 200000x
//	go test ./bench/ -run XXX -bench 'SluiceHopGo/file/r1' -benchtime 200000x -cpuprofile cpu.out
//
// ns/op is the timed part only (the pre-fill is not in it); allocs/msg is
// process-wide, the embedded server included. The garbage collector runs
// with `sluice run`'s default percentage unless -gc-percent or GOGC says
// otherwise.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configs"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/server"
)

var (
	testBatch = flag.Int("baseline-batch", defaultBaselineBatch, "pull batch of the hand-written hop")
	testPull  = flag.String("baseline-pull", defaultBaselinePull, "pull style of the hand-written hop: messages or fetch")
	testGC    = flag.Int("gc-percent", configs.DefaultGCPercent, "garbage collector target percentage (GOGC wins when set)")
)

// testSession is the server and data the tests and benchmarks share.
var testSession struct {
	once sync.Once
	dir  string
	emb  *server.Server
	err  error

	mu   sync.Mutex
	data *Dataset
}

func TestMain(m *testing.M) {
	flag.Parse()
	configs.Settings{GCPercent: *testGC}.ApplyGC()
	code := m.Run()
	if testSession.emb != nil {
		testSession.emb.Shutdown()
	}
	if testSession.dir != "" {
		_ = os.RemoveAll(testSession.dir)
	}
	os.Exit(code)
}

// session returns a bench on the shared server with at least n records.
func session(tb testing.TB, n int) *bench {
	tb.Helper()
	s := &testSession
	s.once.Do(func() {
		if s.dir, s.err = os.MkdirTemp("", "sluice-bench-test-"); s.err != nil {
			return
		}
		s.emb, s.err = server.Start(server.Options{StoreDir: s.dir})
	})
	if s.err != nil {
		tb.Fatalf("embedded server: %v", s.err)
	}
	s.mu.Lock()
	if s.data == nil || len(s.data.Records) < n {
		data, err := NewDataset(n)
		if err != nil {
			s.mu.Unlock()
			tb.Fatal(err)
		}
		s.data = data
	}
	data := s.data
	s.mu.Unlock()
	b, err := newBench(s.emb, data, *testBatch, *testPull)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.close)
	return b
}

// benchShapes runs run as sub-benchmarks storage/rR over b.N records.
func benchShapes(b *testing.B, run func(*bench, context.Context, shape) (sample, error)) {
	for _, storage := range []string{"file", "memory"} {
		for _, r := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/r%d", storage, r), func(b *testing.B) {
				s := session(b, b.N)
				sh := shape{storage: storage, replicas: r, n: b.N}
				res, err := run(s, context.Background(), sh)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(res.end.Sub(res.start).Nanoseconds())/float64(b.N), "ns/op")
				b.ReportMetric(res.rate(b.N), "msgs/s")
				b.ReportMetric(float64(res.mallocs)/float64(b.N), "allocs/msg")
				b.ReportMetric(res.otherCPU, "other-cpus")
				for _, n := range s.notes {
					b.Log(n)
				}
			})
		}
	}
}

func BenchmarkBaselineHop(b *testing.B) {
	benchShapes(b, func(s *bench, ctx context.Context, sh shape) (sample, error) { return s.baselineHop(ctx, sh, false) })
}

func BenchmarkSluiceHopExpr(b *testing.B) {
	benchShapes(b, func(s *bench, ctx context.Context, sh shape) (sample, error) {
		return s.sluiceHop(ctx, sh, false, false)
	})
}

func BenchmarkSluiceHopGo(b *testing.B) {
	benchShapes(b, func(s *bench, ctx context.Context, sh shape) (sample, error) {
		return s.sluiceHop(ctx, sh, true, false)
	})
}

func BenchmarkBaselineChain3(b *testing.B) {
	benchShapes(b, (*bench).baselineChain)
}

func BenchmarkSluiceChain3(b *testing.B) {
	benchShapes(b, func(s *bench, ctx context.Context, sh shape) (sample, error) {
		return s.sluiceChain(ctx, sh, false)
	})
}

func BenchmarkSluiceChain3Fused(b *testing.B) {
	benchShapes(b, func(s *bench, ctx context.Context, sh shape) (sample, error) {
		return s.sluiceChain(ctx, sh, true)
	})
}

// TestSuiteSmall runs every group of the suite on a few records, checks
// that each produced its rows, and renders the report. It asserts no
// timing: the suite is a benchmark.
func TestSuiteSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario")
	}
	out := t.TempDir()
	var stdout, stderr strings.Builder
	code := realMain([]string{"-n", "3000", "-runs", "1", "-replicas", "1,2", "-storage", "memory",
		"-rates", "2000", "-latency-duration", "1500ms", "-alloc-n", "2000", "-out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	md := stdout.String()
	for _, want := range []string{scBaselineHop, scSluiceHopExpr, scSluiceHopGo, scBaselineChain, scSluiceChain,
		scSluiceFused, scSluiceLatency, "sluice's own code", "### Replicas", "## Machine"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	for _, f := range []string{"latest.md", "latest.json"} {
		if _, err := os.Stat(out + "/" + f); err != nil {
			t.Error(err)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		bad  string // a fragment of the error, "" for none
	}{
		{"defaults", nil, ""},
		{"bad storage", []string{"-storage", "disk"}, `"disk" is not file or memory`},
		{"bad replicas", []string{"-replicas", "1,0"}, `"0" is not a count >= 1`},
		{"bad group", []string{"-only", "hop,x"}, `unknown group "x"`},
		{"short latency", []string{"-latency-duration", "1s"}, "more than the 1s warm-up"},
		{"bad pull", []string{"-baseline-pull", "push"}, "-baseline-pull must be"},
		{"scaleout", []string{"-only", "scaleout", "-processes", "1,3"}, ""},
		{"bad processes", []string{"-processes", "1,0"}, `"0" is not a count >= 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			_, err := parseFlags(tc.args, &stderr)
			switch {
			case tc.bad == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
				t.Fatalf("error %v, want one containing %q", err, tc.bad)
			}
		})
	}
}

func TestPercentileAndMedian(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Millisecond}, {99, 990 * time.Millisecond}, {99.9, 999 * time.Millisecond}, {100, time.Second}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("p%g = %s, want %s", tc.p, got, tc.want)
		}
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3, 1, 2 = %g", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median of 4, 1, 2, 3 = %g", got)
	}
}

func TestFuncPackage(t *testing.T) {
	for fn, want := range map[string]string{
		"github.com/sluicehq/sluice/runner.(*worker).process":                     "github.com/sluicehq/sluice/runner",
		"encoding/json.(*decodeState).object":                                     "encoding/json",
		"runtime.mallocgc":                                                        "runtime",
		"main.opDoubleAmount":                                                     "main",
		"github.com/nats-io/nats.go/jetstream.(*jetStream).PublishMsgAsync.func1": "github.com/nats-io/nats.go/jetstream",
	} {
		if got := funcPackage(fn); got != want {
			t.Errorf("funcPackage(%q) = %q, want %q", fn, got, want)
		}
	}
	if g := groupOf("github.com/nats-io/nats.go/jetstream"); g != "nats.go" {
		t.Errorf("group of jetstream = %q", g)
	}
	if g := groupOf("mainly/other"); g != "other" {
		t.Errorf("group of mainly/other = %q", g)
	}
}

func TestParseProbe(t *testing.T) {
	ts := time.Date(2026, 11, 24, 12, 0, 0, 123456789, time.UTC)
	p := []byte(`{"amount":2,"id":42,"ts":"` + ts.Format(time.RFC3339Nano) + `"}`)
	got, id, ok := parseProbe(p)
	if !ok || id != 42 || !got.Equal(ts) {
		t.Fatalf("parseProbe = %v, %d, %v", got, id, ok)
	}
	if _, _, ok := parseProbe([]byte(`{"id":1}`)); ok {
		t.Fatal("parseProbe accepted a record without ts")
	}
}

func TestDatasetDeterministic(t *testing.T) {
	a, err := NewDataset(100)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewDataset(100)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Records {
		if string(a.Records[i]) != string(b.Records[i]) {
			t.Fatalf("record %d differs between two data sets", i)
		}
	}
	if a.MeanBytes < 200 || a.MeanBytes > 240 {
		t.Errorf("mean record size %.1f bytes, want about 220", a.MeanBytes)
	}
}

// TestScenariosCleanUp checks that the scenarios leave no stream behind
// but sluice's state bucket, so that a long run's store does not grow.
func TestScenariosCleanUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scenarios")
	}
	const n = 1000
	s := session(t, n)
	ctx := context.Background()
	sh := shape{storage: "memory", replicas: 2, n: n}
	for name, run := range map[string]func() (sample, error){
		scBaselineHop:   func() (sample, error) { return s.baselineHop(ctx, sh, false) },
		scSluiceHopGo:   func() (sample, error) { return s.sluiceHop(ctx, sh, true, false) },
		scBaselineChain: func() (sample, error) { return s.baselineChain(ctx, sh) },
		scSluiceChain:   func() (sample, error) { return s.sluiceChain(ctx, sh, false) },
		scSluiceFused:   func() (sample, error) { return s.sluiceChain(ctx, sh, true) },
	} {
		if _, err := run(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	names := s.js.StreamNames(ctx)
	for name := range names.Name() {
		if name != "KV_"+schema.StateBucket {
			t.Errorf("stream %s left behind", name)
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	if len(s.notes) > 0 {
		t.Errorf("notes: %q", s.notes)
	}
}

// TestScaleoutSmall runs the scale-out group on a few records: it builds
// the sluice binary and starts servers and workers as processes.
func TestScaleoutSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice and starts a cluster")
	}
	out := t.TempDir()
	var stdout, stderr strings.Builder
	code := realMain([]string{"-only", "scaleout", "-n", "2000", "-runs", "1", "-processes", "1,2", "-out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	md := stdout.String()
	for _, want := range []string{"## Scale-out", "| single server R1 | 2 |", "| 3-node cluster R3 | 2 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "## Throughput") {
		t.Errorf("report has an empty throughput table:\n%s", md)
	}
}

func TestScaleoutRows(t *testing.T) {
	const n = 1000
	sec := func(s float64) scaleSample {
		return scaleSample{elapsed: time.Duration(s * float64(time.Second)), serverCPU: 0.5, workerCPU: 1, busiestWorker: 1, otherCPU: 0}
	}
	single, cluster := scaleShapes[0].name, scaleShapes[1].name
	rows := scaleoutRows(map[scaleKey][]scaleSample{
		{cluster, 2}: {sec(0.5)},
		{single, 2}:  {sec(0.25), sec(0.2), sec(1)},
		{single, 1}:  {sec(0.5)},
		{cluster, 1}: {sec(1)},
	}, n)
	type got struct {
		shape      string
		p          int
		rate       float64
		vsOne      float64
		vsSingle   float64
		cpuPerMsgs float64
	}
	deref := func(v *float64) float64 {
		if v == nil {
			return 0
		}
		return *v
	}
	var g []got
	for _, r := range rows {
		g = append(g, got{r.Shape, r.Processes, r.MsgsPerSec, deref(r.VsOneProcess), deref(r.VsSingle), r.CPUMicrosPerMsg})
	}
	want := []got{
		{single, 1, 2000, 1, 0, 750},
		{single, 2, 4000, 2, 0, 375},
		{cluster, 1, 1000, 1, 0.5, 1500},
		{cluster, 2, 2000, 2, 0.5, 750},
	}
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("rows\n got %v\nwant %v", g, want)
	}
}
