package runner_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/schema"
)

// A switch sends each record on the route of its first matching case, or
// its default; stages reading one or several routes get those records
// only, and without a default the records no case matches are filtered.
func TestRunSwitchRoutes(t *testing.T) {
	for _, tc := range []struct {
		name string
		def  string // the default line of the switch, "" for none
	}{
		{"with default", "default: odd"},
		{"without default", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			oddSink := "  - {name: odds, from: sw.odd, sink: collect}\n"
			if tc.def == "" {
				oddSink = ""
			}
			p := e.parse(t, fmt.Sprintf(`
name: routes
stages:
  - name: gen
    source: generate
    with: {count: 30, template: '{"n": seq}'}
  - name: sw
    transform: switch
    replicas: 2
    with:
      cases:
        - {when: 'n %% 3 == 0', route: fizz}
        - {when: 'n %% 2 == 0', route: even}
        - {when: 'n == 5', route: fizz}
      %s
  - {name: fizzes, from: sw.fizz, sink: collect}
  - {name: evens, from: [sw.even], sink: collect}
  - {name: both, from: [sw.fizz, sw.even], sink: collect}
%s`, tc.def, oddSink))
			sum := e.run(t, context.Background(), p)
			var fizz, even, odd []string
			for n := range 30 {
				r := fmt.Sprintf(`{"n":%d}`, n)
				switch {
				case n%3 == 0 || n == 5:
					fizz = append(fizz, r)
				case n%2 == 0:
					even = append(even, r)
				default:
					odd = append(odd, r)
				}
			}
			slices.Sort(fizz)
			slices.Sort(even)
			slices.Sort(odd)
			both := append(slices.Clone(fizz), even...)
			slices.Sort(both)
			for stage, want := range map[string][]string{"fizzes": fizz, "evens": even, "both": both} {
				if got := e.c.sorted(stage); !slices.Equal(got, want) {
					t.Errorf("%s got %q, want %q", stage, got, want)
				}
			}
			sw := stageSum(t, sum, "sw")
			if tc.def == "" {
				checkCounts(t, sw, 30, uint64(30-len(odd)), uint64(len(odd)), 0)
				return
			}
			checkCounts(t, sw, 30, 30, 0, 0)
			if got := e.c.sorted("odds"); !slices.Equal(got, odd) {
				t.Errorf("odds got %q, want %q", got, odd)
			}
		})
	}
}

// A delay passes each record on no sooner than its duration after the
// upstream stream stored it, also when that is longer than ack_wait, and
// each record once.
func TestRunDelay(t *testing.T) {
	e := newEnv(t)
	const n = 20
	sum := e.run(t, context.Background(), e.parse(t, fmt.Sprintf(`
name: delayed
settings:
  ack_wait: 1s
  retention: limits
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '{"n": seq}'}
  - name: wait
    transform: delay
    with: {duration: 1500ms}
  - name: out
    sink: collect
    buffer: durable # keep the delay's stream, whose times are checked
`, n)))
	if got, want := e.c.sorted("out"), seqRecords(0, n, `{"n":%d}`); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	checkCounts(t, stageSum(t, sum, "wait"), n, n, 0, 0)

	// Each record was stored by the delay's stream 1.5s or more after the
	// generator's stream stored it.
	stored := func(stage string) map[string]time.Time {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		str, err := e.js.Stream(ctx, schema.StreamName("delayed", stage))
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[string]time.Time)
		for seq := uint64(1); seq <= n; seq++ {
			m, err := str.GetMsg(ctx, seq)
			if err != nil {
				t.Fatalf("%s message %d: %v", stage, seq, err)
			}
			out[string(m.Data)] = m.Time
		}
		return out
	}
	in, out := stored("gen"), stored("wait")
	for rec, at := range in {
		if d := out[rec].Sub(at); d < 1500*time.Millisecond {
			t.Errorf("record %s passed %s after it was stored, before it was due", rec, d)
		}
	}
}
