package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// TestFusedMatchesStreams runs one pipeline with every stage fused, with
// a stream after the source and the rest fused in the workers of the
// transform that reads it, and with fusion off: the sink gets the same
// records, every stage the same counts, and the dead-letter stream the
// same dead letters, each naming the stage that failed and the subject it
// read (or would have read) the record on, for a replay.
func TestFusedMatchesStreams(t *testing.T) {
	type result struct {
		out    []string
		counts map[string][6]uint64 // in, out, filtered, errors, dead letters, dropped
		dead   []string             // stage, subject, deliveries, payload
		stored map[string]uint64    // stage -> messages its stream took
	}
	run := func(t *testing.T, fusion, buffer string, chain int) result {
		e := newEnv(t)
		mustRegister(t, e.reg, stages.Spec{
			Name:      "flaky_stateless",
			Summary:   "fails or panics on chosen records, by its own count of calls; stateless, so that it may run fused",
			Stateless: true,
			Params: []stages.Param{
				{Name: "every_n", Type: stages.TypeInt, Default: 0},
				{Name: "fail_times", Type: stages.TypeInt, Default: 0},
				{Name: "panic_on", Type: stages.TypeInt, Default: -1},
			},
			NewTransform: func(p stages.Params, _ stages.Info) (stages.Transform, error) {
				return &callsFlaky{every: p.Int("every_n"), times: p.Int("fail_times"), panicOn: p.Int("panic_on"), calls: map[int]int{}}, nil
			},
		})
		var lines []string
		for i := range 60 {
			if i%10 == 3 {
				lines = append(lines, fmt.Sprintf(`{"n": %d, broken`, i))
				continue
			}
			lines = append(lines, fmt.Sprintf(`{"n": %d, "tags": [{"n": %d, "tag": "a"}, {"n": %d, "tag": "b"}]}`, i, i, i))
		}
		if err := os.WriteFile(filepath.Join(e.dir, "in.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := e.parse(t, `
name: fz
settings:
  max_deliver: 3
  backoff: [10ms]
  fusion: `+fusion+`
stages:
  - name: read
    source: file
    with: {path: $DIR/in.jsonl}
  - name: work
    transform: flaky_stateless
    buffer: `+buffer+`
    with: {every_n: 7, fail_times: 2, panic_on: 20}
  - name: tags
    transform: split
    with: {field: tags}
  - name: check
    transform: map
    with: {expr: 'n == 41 ? int("x") : {"n": n, "tag": tag}'}
  - name: keep
    transform: filter
    with: {expr: 'n % 2 == 0'}
  - name: out
    sink: collect
`)
		if chains := p.Chains(); (chain > 0) != (len(chains) == 1 && len(chains[0]) == chain) {
			t.Fatalf("fusion %s, buffer %s: chains %v", fusion, buffer, chains)
		}
		sum := e.run(t, context.Background(), p)
		r := result{out: e.c.sorted("out"), counts: map[string][6]uint64{}}
		for _, s := range sum.Stages {
			r.counts[s.Name] = [6]uint64{s.In, s.Out, s.Filtered, s.Errors, s.DeadLetters, s.Dropped}
		}
		for _, m := range e.deadLetters(t, "fz") {
			r.dead = append(r.dead, strings.Join([]string{m.Header.Get(stages.HeaderStage), m.Header.Get(stages.HeaderSubject), m.Header.Get(stages.HeaderDeliveries), string(m.Data)}, " "))
		}
		sort.Strings(r.dead)
		r.stored = map[string]uint64{}
		for _, st := range p.Stages[:len(p.Stages)-1] {
			str, err := e.js.Stream(context.Background(), schema.StreamName("fz", st.Name))
			if err != nil {
				t.Fatal(err)
			}
			r.stored[st.Name] = str.CachedInfo().State.LastSeq
		}
		return r
	}
	streams := run(t, "off", "auto", 0)
	for stage, n := range streams.stored {
		if n == 0 {
			t.Errorf("fusion off: the stream of stage %s took nothing", stage)
		}
	}
	for _, v := range []struct {
		name, buffer string
		chain        int
	}{
		{"from the source", "auto", 6},
		{"after a stream", "durable", 5},
	} {
		t.Run(v.name, func(t *testing.T) {
			fused := run(t, "auto", v.buffer, v.chain)
			if !slices.Equal(fused.out, streams.out) || len(fused.out) == 0 {
				t.Errorf("sink: fused %d records, with streams %d:\n%q\n%q", len(fused.out), len(streams.out), fused.out, streams.out)
			}
			for stage, want := range streams.counts {
				if got := fused.counts[stage]; got != want {
					t.Errorf("stage %s: fused counts (in, out, filtered, errors, dead, dropped) %v, with streams %v", stage, got, want)
				}
			}
			// Streams: the dead letters of a stage that read a stream
			// carry its subject; fused, the subject it would have read.
			if !slices.Equal(fused.dead, streams.dead) {
				t.Errorf("dead letters fused:\n%s\nwith streams:\n%s", strings.Join(fused.dead, "\n"), strings.Join(streams.dead, "\n"))
			}
			for _, d := range fused.dead {
				stage := strings.Fields(d)[0]
				if stage == "work" && !strings.Contains(d, " "+schema.Subject("fz", "read")+" ") {
					t.Errorf("dead letter of work without the subject it reads: %s", d)
				}
			}
			// Fused, a stage's stream is skipped: only the source's
			// takes records, with a stream after it.
			for stage, n := range fused.stored {
				if want := stage == "read" && v.buffer == "durable"; (n > 0) != want {
					t.Errorf("stage %s: its stream took %d messages", stage, n)
				}
			}
			// The malformed lines fail at work, the first stage that
			// decodes them.
			if want := []string{"check", "work"}; !slices.Equal(stagesOf(fused.dead), want) {
				t.Errorf("dead letters from stages %v, want %v", stagesOf(fused.dead), want)
			}
		})
	}
}

// stagesOf returns the distinct first fields of dead, sorted.
func stagesOf(dead []string) []string {
	var out []string
	for _, d := range dead {
		if s := strings.Fields(d)[0]; !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// callsFlaky panics on record panicOn and fails the first times calls on
// each record whose n is a multiple of every, counting calls itself: a
// record retried in place in a fused chain is not delivered again.
type callsFlaky struct {
	every, times, panicOn int
	mu                    sync.Mutex
	calls                 map[int]int
}

func (f *callsFlaky) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	n := int(rec["n"].(int64))
	if n == f.panicOn {
		panic("boom")
	}
	f.mu.Lock()
	f.calls[n]++
	calls := f.calls[n]
	f.mu.Unlock()
	if f.every > 0 && n%f.every == 0 && calls <= f.times {
		return out, fmt.Errorf("flaky failure of %d", n)
	}
	return append(out, in), nil
}

func (f *callsFlaky) Close(context.Context) error { return nil }

// TestFusedRoutes: a switch runs fused at the end of the chain before it
// and publishes on its routes' streams, and the transform that reads a
// route heads a chain of its own; the sinks get what they get with a
// stream between every two stages.
func TestFusedRoutes(t *testing.T) {
	run := func(t *testing.T, fusion string) (big, small []string, chains int) {
		e := newEnv(t)
		var lines []string
		for i := range 200 {
			lines = append(lines, fmt.Sprintf(`{"n": %d}`, i))
		}
		if err := os.WriteFile(filepath.Join(e.dir, "in.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := e.parse(t, `
name: routes
settings: {fusion: `+fusion+`}
stages:
  - name: read
    source: file
    with: {path: $DIR/in.jsonl}
  - name: double
    transform: map
    with: {expr: '{"n": n, "d": n * 2}'}
  - name: triage
    transform: switch
    with:
      cases: [{when: 'd >= 300', route: big}]
      default: small
  - name: big
    from: triage.big
    sink: collect
  - name: label
    from: triage.small
    transform: map
    with: {expr: 'merge($env, {"small": true})'}
  - name: small
    sink: collect
`)
		e.run(t, context.Background(), p)
		return e.c.sorted("big"), e.c.sorted("small"), len(p.Chains())
	}
	big, small, chains := run(t, "auto")
	wantBig, wantSmall, _ := run(t, "off")
	if chains != 2 {
		t.Errorf("%d chains, want 2 (read > double > triage, label > small)", chains)
	}
	if len(big) != 50 || len(small) != 150 || !slices.Equal(big, wantBig) || !slices.Equal(small, wantSmall) {
		t.Errorf("fused: %d big, %d small; with streams %d big, %d small", len(big), len(small), len(wantBig), len(wantSmall))
	}
}

// TestFusedTypes: a stage fused after another gets the record with the
// types it would get from a stream (int64, not the int an expression or a
// source makes), however the stage before made it.
func TestFusedTypes(t *testing.T) {
	run := func(t *testing.T, fusion string) []string {
		e := newEnv(t)
		mustRegister(t, e.reg, stages.Spec{
			Name:      "types_of",
			Summary:   "replaces each record by the Go types of its fields",
			Stateless: true,
			NewTransform: func(stages.Params, stages.Info) (stages.Transform, error) {
				return typesOf{}, nil
			},
		})
		p := e.parse(t, `
name: types
settings: {fusion: `+fusion+`}
stages:
  - {name: gen, source: generate, with: {count: 3, template: '{"n": seq, "s": "x"}'}}
  - {name: types1, transform: types_of}
  - {name: m, transform: map, with: {expr: '{"n": 1, "f": 1.5, "l": [1, 2], "o": {"i": 2}}'}}
  - {name: types2, transform: types_of}
  - {name: out, sink: collect}
`)
		e.run(t, context.Background(), p)
		return append(e.c.sorted("out"), fmt.Sprint(len(p.Chains())))
	}
	fused, streams := run(t, "auto"), run(t, "off")
	if !slices.Equal(fused[:len(fused)-1], streams[:len(streams)-1]) || fused[len(fused)-1] != "1" {
		t.Errorf("fused (chains %s):\n%q\nwith streams:\n%q", fused[len(fused)-1], fused, streams)
	}
}

// typesOf replaces each record by the Go types of its fields (and of the
// first element of a list).
type typesOf struct{}

func (typesOf) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	types := map[string]any{}
	for k, v := range rec {
		types[k] = fmt.Sprintf("%T", v)
		if l, ok := v.([]any); ok {
			types[k+"[0]"] = fmt.Sprintf("%T", l[0])
		}
	}
	in.SetValue(types)
	return append(out, in), nil
}

func (typesOf) Close(context.Context) error { return nil }
