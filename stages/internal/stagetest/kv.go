package stagetest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
)

// NATSInfo starts a NATS server and returns the Info a runner would give
// a stage of pipeline p, stage s on it, with a second connection for the
// test's own reads and writes.
func NATSInfo(t *testing.T) (stages.Info, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Server(t)
	info := stages.Info{Pipeline: "p", Stage: "s", Conn: natstest.Connect(t, srv)}
	js, err := jetstream.New(natstest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	return info, js
}

// Context returns a context that ends with the test or after 20s.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// NewInfoTransform builds the transform of type name with info; the test
// closes it at its end.
func NewInfoTransform(t *testing.T, name string, raw map[string]any, info stages.Info) stages.Transform {
	t.Helper()
	s := Lookup(t, stages.RoleTransform, name)
	tr, err := s.NewTransform(Parse(t, s, raw), info)
	if err != nil {
		t.Fatalf("transform %s: %v", name, err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr
}

// WithID returns a message with payload and, unless id is empty, that
// Nats-Msg-Id.
func WithID(payload, id string) *stages.Message {
	m := stages.NewMessage([]byte(payload))
	if id != "" {
		m.Header = nats.Header{stages.HeaderMsgID: {id}}
	}
	return m
}
