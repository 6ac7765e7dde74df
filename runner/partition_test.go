package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
)

// keyedRecord is what the keyed pipelines of these tests write.
type keyedRecord struct {
	User      int64  `json:"user"`
	N         int64  `json:"n"`
	Key       string `json:"key"`
	EventTime string `json:"et"`
}

// checkKeyOrder checks that the records of stage out are each of 0..n-1
// once, and that the records of each user came in the order of n.
func checkKeyOrder(t *testing.T, e *env, stage string, n int) []keyedRecord {
	t.Helper()
	e.c.mu.Lock()
	raw := append([]string(nil), e.c.msgs[stage]...)
	e.c.mu.Unlock()
	seen := make(map[int64]bool, n)
	last := make(map[int64]int64)
	var recs []keyedRecord
	inversions := 0
	for _, s := range raw {
		var r keyedRecord
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if seen[r.N] {
			t.Errorf("record %d written twice", r.N)
		}
		seen[r.N] = true
		if prev, ok := last[r.User]; ok && r.N < prev {
			inversions++
			if inversions <= 5 {
				t.Errorf("user %d: record %d after %d", r.User, r.N, prev)
			}
		}
		last[r.User] = r.N
		recs = append(recs, r)
	}
	if len(seen) != n {
		t.Errorf("%d distinct records, want %d", len(seen), n)
	}
	if inversions > 0 {
		t.Errorf("%d inversions", inversions)
	}
	return recs
}

// Records keyed and partitioned keep the order of each key through a
// chain of stages with several workers, also when full buffers refuse
// publishes, and carry their key and event time.
func TestPartitionsKeepKeyOrder(t *testing.T) {
	e := newEnv(t)
	const n = 3000
	sum := e.run(t, context.Background(), e.parse(t, fmt.Sprintf(`
name: keyed
settings: {max_buffer: 200} # backpressure: publishes refused and sent again
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '{"user": seq %% 17, "n": seq, "ts": 1700000000 + seq}'}
    event_time: ts
    key: user
    partitions: 4
  - name: tag
    transform: map
    replicas: 3
    with: {expr: 'merge($env, {"key": msg.key, "et": msg.headers["Sluice-Event-Time"]})'}
    key: user
    partitions: 3
  - name: out
    sink: collect
    replicas: 2
`, n)))
	recs := checkKeyOrder(t, e, "out", n)
	for _, r := range recs {
		want := time.Unix(1700000000+r.N, 0).UTC().Format(time.RFC3339Nano)
		if r.Key != fmt.Sprint(r.User) || r.EventTime != want {
			t.Fatalf("record %d: key %q, event time %q; want %q, %q", r.N, r.Key, r.EventTime, fmt.Sprint(r.User), want)
		}
	}
	if st := stageSum(t, sum, "tag"); st.In != n || st.Out != n {
		t.Errorf("tag: %+v", st)
	}
}

// A record of a partitioned input that fails is retried in place: the
// records after it in its partition wait, so the order holds.
func TestPartitionsRetryInPlace(t *testing.T) {
	e := newEnv(t)
	const n = 600
	var mu sync.Mutex
	calls := map[int64]int{}
	passed := map[int64][]int64{} // user -> n, in the order passed
	mustRegister(t, e.reg, stages.Spec{
		Name:    "fail_once",
		Summary: "fails the first call on every 50th record",
		NewTransform: func(stages.Params, stages.Info) (stages.Transform, error) {
			return transformFunc(func(m *stages.Message) error {
				rec, err := m.Record()
				if err != nil {
					return err
				}
				k, user := rec["n"].(int64), rec["user"].(int64)
				mu.Lock()
				defer mu.Unlock()
				calls[k]++
				if k%50 == 0 && calls[k] == 1 {
					return fmt.Errorf("first call on %d", k)
				}
				passed[user] = append(passed[user], k)
				return nil
			}), nil
		},
	})
	sum := e.run(t, context.Background(), e.parse(t, fmt.Sprintf(`
name: retried
settings: {backoff: [10ms]}
stages:
  - name: gen
    source: generate
    with: {count: %d, template: '{"user": seq %% 5, "n": seq}'}
    key: user
    partitions: 2
  - name: work
    transform: fail_once
    replicas: 2
  - name: out
    sink: collect
    from: work
`, n)))
	mu.Lock()
	for user, ns := range passed {
		if !slices.IsSorted(ns) {
			t.Errorf("user %d: records passed out of order: %v", user, ns)
		}
	}
	mu.Unlock()
	if got := len(e.c.sorted("out")); got != n {
		t.Errorf("%d records out, want %d", got, n)
	}
	// in counts attempts: each record once, and each failure.
	if st := stageSum(t, sum, "work"); st.Errors != n/50 || st.In != n+n/50 {
		t.Errorf("work: %+v, want %d errors and %d in (retried in place, not delivered again)", st, n/50, n+n/50)
	}
}

// transformFunc is a transform that passes each record on once f accepts
// it.
type transformFunc func(m *stages.Message) error

func (f transformFunc) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	if err := f(in); err != nil {
		return out, err
	}
	return append(out, in), nil
}
func (f transformFunc) Close(context.Context) error { return nil }
