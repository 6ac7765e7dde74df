package nats

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// Each record is published on the subject it gives, with its headers; a
// record that cannot be published fails alone and permanently.
func TestNATSSinkWrite(t *testing.T) {
	srv := natstest.ServerMaxPayload(t, 1024)
	client := natstest.Connect(t, srv)
	sub, err := client.SubscribeSync("out.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Flush(); err != nil {
		t.Fatal(err)
	}
	sk := stagetest.NewSink(t, "nats", map[string]any{"subject": "out.{kind}", "url": srv.ClientURL()}, stages.Info{})

	big := `{"kind":"big","pad":"` + strings.Repeat("x", 2000) + `"}`
	batch := stagetest.Msgs(`{"kind":"a","n":1}`, `{"n":2}`, `{"kind":"b","n":3}`, big, `not json`, `{"kind":"x.y"}`)
	batch[0].Header = nats.Header{stages.HeaderMsgID: {"p/s/1.0"}, "Nats-Expected-Stream": {"NOPE"}, "X-A": {"a"}}
	wantErr := []string{"", "field kind: missing", "", "max_payload of 1024", "invalid JSON", "field kind: contains"}

	err = sk.Write(context.Background(), batch)
	var be *stages.BatchError
	if !errors.As(err, &be) || len(be.Errs) != len(batch) {
		t.Fatalf("got %v, want a BatchError", err)
	}
	for i, want := range wantErr {
		got := be.Errs[i]
		switch {
		case want == "" && got != nil:
			t.Errorf("record %d: %v", i, got)
		case want != "" && (got == nil || !stages.IsPermanent(got) || !strings.Contains(got.Error(), want)):
			t.Errorf("record %d: got %v, want a permanent error with %q", i, got, want)
		}
	}
	for _, want := range []struct{ subject, data string }{{"out.a", `{"kind":"a","n":1}`}, {"out.b", `{"kind":"b","n":3}`}} {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != want.subject || string(m.Data) != want.data {
			t.Errorf("got %s %s, want %s %s", m.Subject, m.Data, want.subject, want.data)
		}
		if want.subject == "out.a" {
			if m.Header.Get(stages.HeaderMsgID) != "p/s/1.0" || m.Header.Get("X-A") != "a" || m.Header.Get("Nats-Expected-Stream") != "" {
				t.Errorf("headers %v", m.Header)
			}
		}
	}
	if n, _, _ := sub.Pending(); n != 0 {
		t.Errorf("%d more messages published", n)
	}
}

// A literal subject does not need the payload to be a record.
func TestNATSSinkLiteralSubject(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	sub, err := nc.SubscribeSync("raw")
	if err != nil {
		t.Fatal(err)
	}
	sk := stagetest.NewSink(t, "nats", map[string]any{"subject": "raw"}, stages.Info{Conn: nc})
	if err := sk.Write(context.Background(), stagetest.Msgs("plain text")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(10 * time.Second); err != nil || string(m.Data) != "plain text" {
		t.Fatalf("got %v, %v", m, err)
	}
	if err := sk.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sk.Write(context.Background(), stagetest.Msgs("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if nc.IsClosed() {
		t.Error("the pipeline's connection was closed")
	}
}
