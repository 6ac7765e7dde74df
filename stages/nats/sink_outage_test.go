package nats

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// outageTimeout bounds a write made while the server is down.
const outageTimeout = 300 * time.Millisecond

// checkOutage checks that err fails a whole batch as an outage.
func checkOutage(t *testing.T, err error) {
	t.Helper()
	var be *stages.BatchError
	if !stages.IsOutage(err) || errors.As(err, &be) {
		t.Fatalf("got %v, want an outage of the whole batch", err)
	}
	t.Log(err)
}

// writeWhenBack writes batch until it succeeds, failing the test if a
// write fails otherwise than with an outage: the sink must get over the
// outage by itself.
func writeWhenBack(t *testing.T, sk stages.Sink, payload string) {
	t.Helper()
	natstest.WaitFor(t, 20*time.Second, "a write to succeed", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := sk.Write(ctx, stagetest.Msgs(payload))
		if err != nil && !stages.IsOutage(err) {
			t.Fatalf("write: %v, want success or an outage", err)
		}
		return err == nil
	})
}

// Each sink says that its server is down with an outage of the whole
// batch, and writes again once the server is back.
func TestSinksServerDown(t *testing.T) {
	for _, tt := range []struct {
		name string
		// open returns the sink's type, parameters and info, given
		// the server and a connection to it that reconnects.
		open func(t *testing.T, srv *server.Server, nc *nats.Conn) (string, map[string]any, stages.Info)
	}{
		{
			name: "nats",
			open: func(t *testing.T, srv *server.Server, _ *nats.Conn) (string, map[string]any, stages.Info) {
				return "nats", map[string]any{"subject": "out", "url": srv.ClientURL()}, stages.Info{}
			},
		},
		{
			name: "jetstream",
			open: func(t *testing.T, srv *server.Server, nc *nats.Conn) (string, map[string]any, stages.Info) {
				createStream(t, newJS(t, nc), jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out"}, Storage: jetstream.FileStorage})
				return "jetstream", map[string]any{"stream": "OUT", "url": srv.ClientURL()}, stages.Info{}
			},
		},
		{
			name: "kv",
			open: func(t *testing.T, _ *server.Server, nc *nats.Conn) (string, map[string]any, stages.Info) {
				return "kv", map[string]any{"bucket": "latest", "key": `"k"`}, stages.Info{Conn: nc}
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := natstest.ServerOn(t, dir, server.RANDOM_PORT)
			port := srv.Addr().(*net.TCPAddr).Port
			nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			typ, raw, info := tt.open(t, srv, nc)
			sk := stagetest.NewSink(t, typ, raw, info)
			if err := sk.Write(context.Background(), stagetest.Msgs(`{"n":1}`)); err != nil {
				t.Fatal(err)
			}

			srv.Shutdown()
			srv.WaitForShutdown()
			ctx, cancel := context.WithTimeout(context.Background(), outageTimeout)
			defer cancel()
			checkOutage(t, sk.Write(ctx, stagetest.Msgs(`{"n":2}`, `{"n":3}`)))

			natstest.ServerOn(t, dir, port)
			writeWhenBack(t, sk, `{"n":4}`)
		})
	}
}

// A stream deleted under the jetstream sink is an outage, until it is
// created again; a subject the stream does not take is the record's
// fault.
func TestJetStreamSinkStreamGone(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	js := newJS(t, nc)
	createStream(t, js, jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.a", "out.b", "out.c"}})
	sk := stagetest.NewSink(t, "jetstream", map[string]any{"stream": "OUT", "subject": "out.{to}", "url": srv.ClientURL()}, stages.Info{})

	err := sk.Write(context.Background(), stagetest.Msgs(`{"to":"a"}`, `{"to":"x"}`))
	var be *stages.BatchError
	if !errors.As(err, &be) || be.Errs[0] != nil || !stages.IsPermanent(be.Errs[1]) {
		t.Fatalf("got %v, want the second record to fail permanently", err)
	}

	if err := js.DeleteStream(context.Background(), "OUT"); err != nil {
		t.Fatal(err)
	}
	checkOutage(t, sk.Write(context.Background(), stagetest.Msgs(`{"to":"b"}`)))
	createStream(t, js, jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.a", "out.b", "out.c"}})
	writeWhenBack(t, sk, `{"to":"c"}`)
}
