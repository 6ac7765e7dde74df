package runner_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// The conformance suite runs every registered stage type in a real
// pipeline on a real NATS server, and holds it to what the runner relies
// on:
//   - lifecycle: it builds from its parameters, handles records, and is
//     closed when the run ends, which stops everything it started (no
//     goroutine outlives the run);
//   - errors become dead letters: each bad input (a record the stage
//     cannot handle, or for a source something it reads that is not a
//     record) ends in the dead-letter stream naming the stage, and no
//     record is lost: the summary accounts for every input.
//
// Each type has a conformanceCase, added by the conformance_*_test.go
// file of its family; TestConformanceCoversEveryType fails when one is
// missing.

// conformanceCase tells the suite how to run one stage type.
type conformanceCase struct {
	role stages.Role
	name string
	// setup prepares what the stage needs (files, servers, streams),
	// registering its cleanup with t, and returns how to run it.
	setup func(t *testing.T, e *conformanceEnv) conformanceStage
}

// conformanceStage is one stage under test and its inputs.
type conformanceStage struct {
	// with is the stage's parameters as YAML flow mapping text, such as
	// `{path: /tmp/x.jsonl}`; empty for none.
	with string
	// good and bad are the payloads fed to a transform or sink: each good
	// one must be handled, each bad one must become a dead letter.
	good, bad []string
	// inKeys, for a transform or sink, adds keys to the stage that feeds
	// it, such as "key: user, partitions: 1" for a type that reads
	// partitions.
	inKeys string
	// For a source: feed, if set, produces its records once the run has
	// started (an unbounded source: the suite stops the run once every
	// record is accounted for); without it the source is bounded and
	// ends on its own. want is how many records the source must yield
	// and wantBad how many of what it reads must be dead letters.
	feed    func(ctx context.Context, t *testing.T) error
	want    int
	wantBad int
	// check, if set, verifies the effects once the run has ended, such
	// as what a sink wrote; got holds the payloads that reached the
	// "collect" sink after a source or transform.
	check func(t *testing.T, got []string)
}

// conformanceEnv is what a case's setup may use.
type conformanceEnv struct {
	nc    *nats.Conn // a connection to the pipeline's server, for setup and checks
	url   string     // the NATS server's client URL
	dir   string     // a temporary directory
	stdin io.Reader  // what the stdin source reads; setup may set it
	out   *strings.Builder
}

// conformanceCases is filled by the init functions of the
// conformance_*_test.go files.
var conformanceCases []conformanceCase

func TestConformanceCoversEveryType(t *testing.T) {
	have := make(map[string]bool)
	for _, c := range conformanceCases {
		have[c.role.String()+"/"+c.name] = true
	}
	for _, s := range builtin.NewRegistry().Specs() {
		if key := s.Role().String() + "/" + s.Name; !have[key] {
			t.Errorf("%s %q has no conformance case", s.Role(), s.Name)
		}
	}
}

func TestConformance(t *testing.T) {
	for _, c := range conformanceCases {
		t.Run(c.role.String()+"/"+c.name, func(t *testing.T) {
			runConformance(t, c)
		})
	}
}

func runConformance(t *testing.T, c conformanceCase) {
	srv := natstest.Server(t)
	col := &collector{msgs: map[string][]string{}}
	reg := testRegistry(t, col)
	mustRegister(t, reg, feedSpec())
	e := &conformanceEnv{
		nc:    natstest.Connect(t, srv),
		url:   srv.ClientURL(),
		dir:   t.TempDir(),
		stdin: strings.NewReader(""),
		out:   &strings.Builder{},
	}
	cs := c.setup(t, e)
	with := cs.with
	if with == "" {
		with = "{}"
	}

	var src string
	switch c.role {
	case stages.RoleSource:
		src = fmt.Sprintf(`name: conformance
settings: {max_deliver: 1}
stages:
  - {name: under-test, source: %s, with: %s}
  - {name: got, sink: collect}
`, c.name, with)
	case stages.RoleTransform:
		src = fmt.Sprintf(`name: conformance
settings: {max_deliver: 1}
stages:
  - {name: in, source: feed, with: {records: %s}%s}
  - {name: under-test, transform: %s, with: %s}
  - {name: got, sink: collect}
`, flowList(append(cs.good, cs.bad...)), inKeys(cs), c.name, with)
		if routes := routesOf(t, reg, c, cs); len(routes) > 0 {
			// Read every route the stage declares for the
			// parameters given.
			src = strings.TrimSuffix(src, "  - {name: got, sink: collect}\n")
			from := make([]string, len(routes))
			for i, r := range routes {
				from[i] = "under-test"
				if r != "" {
					from[i] += "." + r
				}
			}
			src += "  - {name: got, sink: collect, from: [" + strings.Join(from, ", ") + "]}\n"
		}
	case stages.RoleSink:
		src = fmt.Sprintf(`name: conformance
settings: {max_deliver: 1}
stages:
  - {name: in, source: feed, with: {records: %s}%s}
  - {name: under-test, sink: %s, with: %s}
`, flowList(append(cs.good, cs.bad...)), inKeys(cs), c.name, with)
	}
	p, err := pipeline.Parse("conformance.yaml", []byte(src), pipeline.Options{Registry: reg})
	if err != nil {
		t.Fatalf("parse:\n%s\n%v", src, err)
	}

	// Every goroutine started from here on must be gone when the run has
	// ended and its connection is closed.
	before := goroutines()
	nc := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := runner.Options{Registry: reg, Stdin: e.stdin, Stdout: e.out, StopTimeout: 10 * time.Second}

	var sum *runner.Summary
	if cs.feed == nil {
		sum, err = runner.Run(ctx, nc, p, opts)
	} else {
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			var err error
			sum, err = runner.Run(runCtx, nc, p, opts)
			done <- err
		}()
		if err := cs.feed(ctx, t); err != nil {
			stop()
			<-done
			t.Fatalf("feed: %v", err)
		}
		natstest.WaitFor(t, time.Minute, fmt.Sprintf("%d records and %d dead letters", cs.want, cs.wantBad), func() bool {
			return len(col.sorted("got")) >= cs.want && deadLetterCount(t, nc) >= cs.wantBad
		})
		stop()
		err = <-done
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	nc.Close()
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if left = leftGoroutines(before); len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling for exits, not ordering
	}
	for _, g := range left {
		t.Errorf("goroutine left after the run:\n%s", g)
	}

	// Every input is accounted for, and each bad one is a dead letter of
	// the stage under test.
	st := stageSum(t, sum, "under-test")
	wantIn, wantBad := uint64(len(cs.good)+len(cs.bad)), len(cs.bad)
	if c.role == stages.RoleSource {
		wantIn, wantBad = uint64(cs.want+cs.wantBad), cs.wantBad
	}
	if st.In != wantIn {
		t.Errorf("stage in: got %d, want %d", st.In, wantIn)
	}
	if c.role != stages.RoleTransform && st.In != st.Out+st.Filtered+st.DeadLetters+st.Dropped {
		t.Errorf("records lost: in %d, out %d, filtered %d, dead %d, dropped %d", st.In, st.Out, st.Filtered, st.DeadLetters, st.Dropped)
	}
	dead := natstest.StreamMessages(t, e.nc, schema.DLQStreamName("conformance"))
	if len(dead) != wantBad || st.DeadLetters != uint64(wantBad) {
		t.Errorf("dead letters: %d in the stream, %d counted, want %d", len(dead), st.DeadLetters, wantBad)
	}
	for _, m := range dead {
		if m.Header.Get(stages.HeaderStage) != "under-test" || m.Header.Get(stages.HeaderError) == "" {
			t.Errorf("dead letter %q: stage %q, error %q", m.Data, m.Header.Get(stages.HeaderStage), m.Header.Get(stages.HeaderError))
		}
	}
	if c.role == stages.RoleSource {
		if got := len(col.sorted("got")); got != cs.want {
			t.Errorf("records out: got %d, want %d", got, cs.want)
		}
	}
	if cs.check != nil {
		cs.check(t, col.sorted("got"))
	}
}

// inKeys returns the keys cs adds to the stage that feeds it, as flow
// mapping text after a comma.
func inKeys(cs conformanceStage) string {
	if cs.inKeys == "" {
		return ""
	}
	return ", " + cs.inKeys
}

// goroutines returns the stack of every goroutine, by ID.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
		out[id] = g
	}
	return out
}

// leftGoroutines returns the stacks of the goroutines that did not exist
// in before, leaving out the NATS server's own (it creates some for the
// streams and consumers a run provisions) and the test's.
func leftGoroutines(before map[string]string) []string {
	var left []string
	for id, g := range goroutines() {
		if _, old := before[id]; old || strings.Contains(g, "nats-server/v2/server") || strings.Contains(g, "testing.tRunner") || strings.Contains(g, "leftGoroutines") {
			continue
		}
		left = append(left, g)
	}
	return left
}

// routesOf returns the routes a transform case declares, or nil.
func routesOf(t *testing.T, reg *stages.Registry, c conformanceCase, cs conformanceStage) []string {
	spec, err := reg.LookupRole(c.role, c.name)
	if err != nil || spec.Routes == nil {
		return nil
	}
	var raw map[string]any
	if err := yaml.Unmarshal([]byte(cs.with), &raw); err != nil {
		t.Fatalf("with %s: %v", cs.with, err)
	}
	params, errs := spec.ParseParams(raw)
	if len(errs) > 0 {
		t.Fatalf("with %s: %v", cs.with, errs)
	}
	return spec.Routes(params)
}

func deadLetterCount(t *testing.T, nc *nats.Conn) int {
	return len(natstest.StreamMessages(t, nc, schema.DLQStreamName("conformance")))
}

// flowList writes payloads as a YAML flow list of quoted strings.
func flowList(payloads []string) string {
	q := make([]string, len(payloads))
	for i, p := range payloads {
		q[i] = "'" + strings.ReplaceAll(p, "'", "''") + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// feedSpec is the test source "feed": it yields the payloads in records,
// as they are, then ends.
func feedSpec() stages.Spec {
	return stages.Spec{
		Name:    "feed",
		Summary: "yields the given payloads",
		Params:  []stages.Param{{Name: "records", Type: stages.TypeStringList, Required: true}},
		NewSource: func(p stages.Params, _ stages.Info) (stages.Source, error) {
			return &feedSource{records: p.Strings("records")}, nil
		},
	}
}

type feedSource struct{ records []string }

func (f *feedSource) Read(context.Context) (*stages.Message, error) {
	if len(f.records) == 0 {
		return nil, io.EOF
	}
	m := stages.NewMessage([]byte(f.records[0]))
	f.records = f.records[1:]
	return m, nil
}
func (f *feedSource) Close(context.Context) error { return nil }

func mustRegister(t *testing.T, reg *stages.Registry, s stages.Spec) {
	t.Helper()
	if err := reg.Register(s); err != nil {
		t.Fatal(err)
	}
}

// writeConformanceFile writes content to name under dir and returns the
// path.
func writeConformanceFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := dir + "/" + name
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
