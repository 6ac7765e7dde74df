package runner

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

var errDown = stages.Outage(errors.New("connection refused"))

// fastOutageBackoff makes the held retry loop pause 1ms at most.
func fastOutageBackoff(t *testing.T) {
	saved := outageBackoff
	outageBackoff = retry.Backoff{Min: time.Millisecond, Max: time.Millisecond}
	t.Cleanup(func() { outageBackoff = saved })
}

// TestHeldLoop: records that fail because the destination is down are
// held and tried again in place, in order, until they pass: no nak, no
// dead letter, no attempt counted (max_deliver 1 would dead-letter at
// the first record-level error), and the stage's hold is counted once.
func TestHeldLoop(t *testing.T) {
	fastOutageBackoff(t)
	for _, tc := range []struct {
		name    string
		role    stages.Role
		ordered bool
		// errs is what each call fails with for each record it is given;
		// calls past the end succeed.
		errs      [][]error
		wantCalls int
		wantSeqs  [][]uint64 // sink: the records of each call
	}{
		{"sink, whole batch down three times", stages.RoleSink, false,
			[][]error{{errDown, errDown, errDown}, {errDown, errDown, errDown}, {errDown, errDown, errDown}}, 4,
			[][]uint64{{1, 2, 3}, {1, 2, 3}, {1, 2, 3}, {1, 2, 3}}},
		{"sink, the last two records down: only they are written again", stages.RoleSink, false,
			[][]error{{nil, errDown, errDown}, {errDown, nil}}, 3,
			[][]uint64{{1, 2, 3}, {2, 3}, {2}}},
		{"sink on partitions", stages.RoleSink, true,
			[][]error{{nil, errDown, errDown}}, 2,
			[][]uint64{{1, 2, 3}, {2, 3}}},
		{"transform", stages.RoleTransform, false,
			[][]error{{errDown}, {errDown}}, 5, nil}, // record 1 three calls, then 2 and 3
		{"transform on partitions", stages.RoleTransform, true,
			[][]error{{errDown}, {errDown}}, 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := testStage(pipeline.OnErrorRetry, 1, time.Hour)
			st.Role = tc.role
			var seqs [][]uint64
			var s step
			if tc.role == stages.RoleSink {
				s = &sinkStep{sink: &funcSink{write: func(call int, batch []*stages.Message) error {
					var got []uint64
					for _, m := range batch {
						got = append(got, m.Meta.Sequence)
					}
					seqs = append(seqs, got)
					if call > len(tc.errs) {
						return nil
					}
					if errs := tc.errs[call-1]; len(errs) == len(batch) && slices.ContainsFunc(errs, func(e error) bool { return e == nil }) {
						return &stages.BatchError{Errs: errs}
					}
					return errDown
				}}}
			} else {
				s = &transformStep{transform: &funcTransform{process: func(call int, _ *stages.Message) ([]*stages.Message, error) {
					if call <= len(tc.errs) {
						return nil, tc.errs[call-1][0]
					}
					return nil, nil
				}}, routes: outputRoutes(st)}
			}
			w := testWorker(st, s, tc.ordered)
			var msgs []*testMsg
			for i := range 3 {
				m := newTestMsg("in", uint64(i+1), 1, "{}")
				msgs = append(msgs, m)
				w.batch.add(delivery{jm: m, part: 0})
			}
			ctx := context.Background()
			w.process(ctx, ctx)
			for i, m := range msgs {
				if m.acks != 1 || m.naks != 0 || m.terms != 0 {
					t.Errorf("record %d: %d acks, %d naks, %d terms; want acked", i+1, m.acks, m.naks, m.terms)
				}
			}
			calls := len(seqs)
			if tr, ok := s.(*transformStep); ok {
				calls = tr.transform.(*funcTransform).calls
			}
			if calls != tc.wantCalls || tc.wantSeqs != nil && !slices.EqualFunc(seqs, tc.wantSeqs, slices.Equal) {
				t.Errorf("%d calls with %v, want %d with %v", calls, seqs, tc.wantCalls, tc.wantSeqs)
			}
			var sum StageSummary
			w.stats.hold.fill(&sum, time.Now())
			if e := w.stats.errors.Load(); e != 0 || sum.Outages != 1 || sum.Held <= 0 || !sum.HeldSince.IsZero() || !w.outage.since.IsZero() {
				t.Errorf("%d errors, held %s in %d outages (now since %v); want no errors, held once, not now", e, sum.Held, sum.Outages, sum.HeldSince)
			}
		})
	}
}

// TestHeldLoopGivesBack: a worker held when it is told to stop, or past
// its stage's max_outage, gives its records back (nak, no dead letter,
// no attempt counted); past max_outage, the run fails with ErrMaxOutage.
func TestHeldLoopGivesBack(t *testing.T) {
	fastOutageBackoff(t)
	for _, tc := range []struct {
		name      string
		maxOutage time.Duration
		stopAt    int // the call after which the worker is told to stop, 0 never
	}{
		{"told to stop", 0, 3},
		{"max_outage", 20 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := testStage(pipeline.OnErrorRetry, 1, time.Hour)
			st.Role, st.MaxOutage = stages.RoleSink, tc.maxOutage
			stop, cancel := context.WithCancel(context.Background())
			defer cancel()
			sink := &funcSink{write: func(call int, _ []*stages.Message) error {
				if call == tc.stopAt {
					cancel()
				}
				return errDown
			}}
			w := testWorker(st, &sinkStep{sink: sink}, false)
			w.run.log = w.log
			m := newTestMsg("in", 1, 1, "{}")
			w.batch.add(delivery{jm: m})
			w.process(stop, context.Background())
			if m.acks != 0 || m.naks != 1 || m.terms != 0 || len(m.nakDelays) != 0 {
				t.Errorf("%d acks, %d naks (delays %v), %d terms; want given back at once", m.acks, m.naks, m.nakDelays, m.terms)
			}
			err := w.run.failure()
			if tc.maxOutage > 0 != errors.Is(err, ErrMaxOutage) || tc.maxOutage > 0 && !errors.Is(err, errDown) {
				t.Errorf("run failure %v", err)
			}
			var sum StageSummary
			w.stats.hold.fill(&sum, time.Now())
			if e := w.stats.errors.Load(); e != 0 || sum.Outages != 1 || !sum.HeldSince.IsZero() {
				t.Errorf("%d errors, %d outages, held since %v; want none, 1, not held", e, sum.Outages, sum.HeldSince)
			}
		})
	}
}

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`http: POST https://u:p4ss@example.com/x: refused`, `http: POST https://example.com/x: refused`},
		{`dial postgres://app:s3cret@db:5432/orders failed; nats://tok@h:4222`, `dial postgres://db:5432/orders failed; nats://h:4222`},
		{`no URL here: a@b`, `no URL here: a@b`},
	} {
		if got := redactURLs(tc.in); got != tc.want {
			t.Errorf("redactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestSummaryHeldColumn: the summary table has a held column only when a
// stage was held.
func TestSummaryHeldColumn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		post  StageSummary
		wants []string
		not   string
	}{
		{"never held", StageSummary{Name: "post"}, nil, "held"},
		{"held once", StageSummary{Name: "post", Held: 1500 * time.Millisecond, Outages: 1}, []string{"held", "1.5s (1 outage)", "0s"}, ""},
		{"held twice", StageSummary{Name: "post", Held: 2 * time.Second, Outages: 2}, []string{"held", "2s (2 outages)"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Summary{Pipeline: "p", Run: 1, Stages: []StageSummary{{Name: "gen"}, tc.post}}
			var b strings.Builder
			if err := s.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.wants {
				if !strings.Contains(b.String(), want) {
					t.Errorf("table without %q:\n%s", want, b.String())
				}
			}
			if tc.not != "" && strings.Contains(b.String(), tc.not) {
				t.Errorf("table with %q:\n%s", tc.not, b.String())
			}
		})
	}
}
