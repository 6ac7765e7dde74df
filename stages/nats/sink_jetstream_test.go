package nats

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// The sink fails at start, clearly, when it cannot publish to the stream.
func TestJetStreamSinkStart(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	js := newJS(t, nc)
	createStream(t, js, jetstream.StreamConfig{Name: "ONE", Subjects: []string{"one"}})
	createStream(t, js, jetstream.StreamConfig{Name: "TWO", Subjects: []string{"two.a", "two.b"}})
	createStream(t, js, jetstream.StreamConfig{Name: "WILD", Subjects: []string{"wild.>"}})
	createStream(t, js, jetstream.StreamConfig{Name: "MIRROR", Mirror: &jetstream.StreamSource{Name: "ONE"}})
	tests := []struct {
		name string
		raw  map[string]any
		err  string // part of the error; "" for none
	}{
		{name: "the stream's only subject", raw: map[string]any{"stream": "ONE"}},
		{name: "a subject of the stream", raw: map[string]any{"stream": "TWO", "subject": "two.b"}},
		{name: "a template", raw: map[string]any{"stream": "WILD", "subject": "wild.{kind}"}},
		{name: "missing stream", raw: map[string]any{"stream": "NOPE"}, err: "stream NOPE does not exist"},
		{name: "two subjects", raw: map[string]any{"stream": "TWO"}, err: "subject: required: stream TWO has subjects [two.a, two.b]"},
		{name: "a wildcard subject", raw: map[string]any{"stream": "WILD"}, err: "not exactly one without wildcards"},
		{name: "not a subject of the stream", raw: map[string]any{"stream": "TWO", "subject": "two.c"}, err: "two.c is not a subject of stream TWO"},
		{name: "mirror", raw: map[string]any{"stream": "MIRROR", "subject": "x"}, err: "is a mirror"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := stagetest.Lookup(t, stages.RoleSink, "jetstream")
			sk, err := spec.NewSink(stagetest.Parse(t, spec, tt.raw), stages.Info{Conn: nc})
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				sk.Close(context.Background())
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %v, want an error with %q", err, tt.err)
			}
		})
	}
}

// A batch is stored with its records' message IDs: writing it again, as
// a retry after a crash does, stores nothing more.
func TestJetStreamSinkDedupsRetriedBatch(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	createStream(t, newJS(t, nc), jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out"}})
	sk := stagetest.NewSink(t, "jetstream", map[string]any{"stream": "OUT"}, stages.Info{Conn: nc})
	batch := func() []*stages.Message {
		b := stagetest.Msgs(`{"n":1}`, `{"n":2}`, `{"n":3}`)
		for i, m := range b {
			m.Header = nats.Header{stages.HeaderMsgID: {"p/s/UP:" + string(rune('1'+i)) + ".0"}, "Nats-Expected-Last-Sequence": {"99"}}
		}
		return b
	}
	for round := range 3 {
		if err := sk.Write(context.Background(), batch()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	stored := natstest.StreamMessages(t, nc, "OUT")
	if len(stored) != 3 {
		t.Fatalf("stored %d messages, want 3", len(stored))
	}
	for i, m := range stored {
		if got, want := m.Header.Get(stages.HeaderMsgID), "p/s/UP:"+string(rune('1'+i))+".0"; got != want {
			t.Errorf("message %d: id %q, want %q", i, got, want)
		}
	}
}

// A record the stream refuses fails alone and permanently; a publish that
// is not acknowledged fails, to be retried.
func TestJetStreamSinkErrors(t *testing.T) {
	srv := natstest.ServerMaxPayload(t, 4096)
	nc := natstest.Connect(t, srv)
	createStream(t, newJS(t, nc), jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.>"}, MaxMsgSize: 512})
	sk := stagetest.NewSink(t, "jetstream", map[string]any{"stream": "OUT", "subject": "{area}.{kind}", "url": srv.ClientURL()}, stages.Info{Conn: nc})
	tests := []struct {
		record string
		err    string // part of the permanent error; "" for none
	}{
		{record: `{"area":"out","kind":"a"}`},
		{record: `{"area":"out","kind":"b","pad":"` + strings.Repeat("x", 600) + `"}`, err: "maximum"},
		{record: `{"area":"out","kind":"c","pad":"` + strings.Repeat("x", 5000) + `"}`, err: "max_payload"},
		{record: `{"area":"elsewhere","kind":"d"}`, err: "no stream takes this subject"},
		{record: `{"area":"out"}`, err: "field kind: missing"},
		{record: `{"area":"out","kind":"e"}`},
	}
	batch := make([]*stages.Message, len(tests))
	for i, tt := range tests {
		batch[i] = stages.NewMessage([]byte(tt.record))
	}
	err := sk.Write(context.Background(), batch)
	var be *stages.BatchError
	if !errors.As(err, &be) || len(be.Errs) != len(batch) {
		t.Fatalf("got %v, want a BatchError", err)
	}
	for i, tt := range tests {
		got := be.Errs[i]
		switch {
		case tt.err == "" && got != nil:
			t.Errorf("record %d: %v", i, got)
		case tt.err != "" && (got == nil || !stages.IsPermanent(got) || !strings.Contains(got.Error(), tt.err)):
			t.Errorf("record %d: got %v, want a permanent error with %q", i, got, tt.err)
		}
	}
	stored := natstest.StreamMessages(t, nc, "OUT")
	if len(stored) != 2 || stored[0].Subject != "out.a" || stored[1].Subject != "out.e" {
		t.Errorf("stored %d messages", len(stored))
	}
}
