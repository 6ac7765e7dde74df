package runner_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// ackSource yields records with the IDs it is given, some twice, and one
// bad record, and records what each record's OnAck heard.
type ackSource struct {
	ids  []string
	mu   *sync.Mutex
	acks map[string][]error
}

func (s *ackSource) Read(context.Context) (*stages.Message, error) {
	if len(s.ids) == 0 {
		return nil, io.EOF
	}
	id := s.ids[0]
	s.ids = s.ids[1:]
	m := stages.NewMessage(fmt.Appendf(nil, `{"id": %q}`, id))
	m.Header = stages.Header{stages.HeaderMsgID: {id}}
	m.OnAck(func(err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.acks[id] = append(s.acks[id], err)
	})
	if id == "bad" {
		return m, stages.Permanent(errors.New("a record the source cannot read"))
	}
	return m, nil
}

func (s *ackSource) Close(context.Context) error { return nil }

// A source's records are acknowledged to it once each, after they are
// stored (nil) or dead-lettered (ErrDeadLettered); records it identifies
// by Nats-Msg-Id are stored once however often they are read.
func TestSourceAcksAndIdentities(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	acks := map[string][]error{}
	mustRegister(t, e.reg, stages.Spec{
		Name:    "acking",
		Summary: "yields identified records and records their acknowledgements",
		NewSource: func(stages.Params, stages.Info) (stages.Source, error) {
			return &ackSource{ids: []string{"a", "b", "a", "bad", "c", "b"}, mu: &mu, acks: acks}, nil
		},
	})
	p := e.parse(t, `name: acks
stages:
  - {name: src, source: acking}
  - {name: out, sink: collect}
`)
	sum := e.run(t, context.Background(), p)

	if got, want := e.c.sorted("out"), []string{`{"id": "a"}`, `{"id": "b"}`, `{"id": "c"}`}; !slices.Equal(got, want) {
		t.Errorf("written: got %q, want %q", got, want)
	}
	checkCounts(t, stageSum(t, sum, "src"), 6, 5, 0, 1)
	mu.Lock()
	defer mu.Unlock()
	for id, want := range map[string]int{"a": 2, "b": 2, "c": 1} {
		if errs := acks[id]; len(errs) != want || slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
			t.Errorf("acks of %s: got %v, want %d nil", id, errs, want)
		}
	}
	if errs := acks["bad"]; len(errs) != 1 || !errors.Is(errs[0], stages.ErrDeadLettered) {
		t.Errorf("acks of the bad record: got %v, want one ErrDeadLettered", errs)
	}
}

// A stage that gives up on a record because the run stops (its context is
// cancelled after the stop timeout) does not make the record a dead
// letter, even on its last allowed attempt: it is nak'ed for the next run.
func TestStopIsNotAFailedAttempt(t *testing.T) {
	e := newEnv(t)
	p := e.parse(t, `name: stopping
settings: {max_deliver: 1}
stages:
  - {name: gen, source: generate, with: {count: 1, template: '{"n": seq}'}}
  - {name: hold, transform: slow, with: {every_n: 1, sleep: 1h}}
  - {name: out, sink: collect}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var sum *runner.Summary
	go func() {
		var err error
		sum, err = runner.Run(ctx, e.nc, p, runner.Options{Registry: e.reg, StopTimeout: 200 * time.Millisecond})
		done <- err
	}()
	natstest.WaitFor(t, 30*time.Second, "the record held by the stage", func() bool { return len(e.c.sorted("slow-calls")) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !sum.Interrupted {
		t.Error("run not interrupted")
	}
	if dead := e.deadLetters(t, "stopping"); len(dead) != 0 {
		t.Errorf("%d dead letters, want none", len(dead))
	}
	if st := stageSum(t, sum, "hold"); st.DeadLetters != 0 || st.Errors != 0 {
		t.Errorf("hold: %+v", st)
	}
}
