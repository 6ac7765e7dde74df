package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// A request is answered only once the runner reported the fate of its
// record, and the answer says it.
func TestNATSSourceAnswersRequestsAfterTheAck(t *testing.T) {
	tests := []struct {
		name     string
		outcome  error
		wantBody string
		wantCode string // Nats-Service-Error-Code; "" for none
	}{
		{name: "stored", outcome: nil, wantBody: `{"ok":true}`},
		{name: "dead-lettered", outcome: fmt.Errorf("%w: invalid JSON", stages.ErrDeadLettered), wantBody: `{"ok":false,"error":"sluice: record not accepted: invalid JSON"}`, wantCode: "400"},
		{name: "not stored", outcome: errors.New("stage \"in\": not stored: the run stops"), wantBody: `{"ok":false,"error":"stage \"in\": not stored: the run stops"}`, wantCode: "503"},
	}
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	client := natstest.Connect(t, srv)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := stagetest.NewSource(t, "nats", map[string]any{"subject": "req.>"}, stages.Info{Conn: nc, Pipeline: "p", Stage: "in"})
			inbox, err := client.SubscribeSync(client.NewInbox())
			if err != nil {
				t.Fatal(err)
			}
			defer inbox.Unsubscribe()
			req := nats.NewMsg("req.a")
			req.Reply = inbox.Subject
			req.Data = []byte(`{"n":1}`)
			req.Header.Set("Nats-Msg-Id", "client-1")
			req.Header.Set("Nats-Expected-Stream", "OTHER")
			req.Header.Set("Sluice-Origin", "forged")
			req.Header.Set("Sluice-Key", "k1")
			req.Header.Set("X-Custom", "v")
			if err := client.PublishMsg(req); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m, err := src.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := stagetest.PayloadOf(t, m); got != `{"n":1}` {
				t.Errorf("payload %q", got)
			}
			for k, want := range map[string]string{
				stages.HeaderMsgID: "client-1", stages.HeaderKey: "k1", "X-Custom": "v", HeaderSourceSubject: "req.a",
				"Nats-Expected-Stream": "", stages.HeaderOrigin: "",
			} {
				if got := m.Header.Get(k); got != want {
					t.Errorf("header %s: %q, want %q", k, got, want)
				}
			}
			// Nothing is answered before the runner reports.
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if n, _, _ := inbox.Pending(); n != 0 {
				t.Fatalf("answered before the record was stored: %d answers", n)
			}
			m.Ack(tt.outcome)
			r, err := inbox.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if string(r.Data) != tt.wantBody {
				t.Errorf("answer %s, want %s", r.Data, tt.wantBody)
			}
			if got := r.Header.Get("Nats-Service-Error-Code"); got != tt.wantCode {
				t.Errorf("error code %q, want %q", got, tt.wantCode)
			}
			if tt.wantCode != "" && r.Header.Get("Nats-Service-Error") == "" {
				t.Error("no Nats-Service-Error header")
			}
		})
	}
}

// Every process that runs the stage joins one queue group, so each
// message goes to one of them; an empty queue subscribes without one.
func TestNATSSourceQueueGroup(t *testing.T) {
	const n = 20
	tests := []struct {
		name      string
		raw       map[string]any
		wantQueue string
		wantTotal int
	}{
		{name: "default", raw: map[string]any{"subject": "q.*"}, wantQueue: "sluice.p.s", wantTotal: n},
		{name: "named", raw: map[string]any{"subject": "q.*", "queue": "workers"}, wantQueue: "workers", wantTotal: n},
		{name: "none", raw: map[string]any{"subject": "q.*", "queue": ""}, wantQueue: "", wantTotal: 2 * n},
	}
	srv := natstest.Server(t)
	client := natstest.Connect(t, srv)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := stages.Info{Pipeline: "p", Stage: "s"}
			var srcs []*natsSource
			for range 2 {
				info.Conn = natstest.Connect(t, srv) // two processes
				s := stagetest.NewSource(t, "nats", tt.raw, info).(*natsSource)
				if s.sub.Queue != tt.wantQueue {
					t.Errorf("queue %q, want %q", s.sub.Queue, tt.wantQueue)
				}
				srcs = append(srcs, s)
			}
			for i := range n {
				if err := client.Publish(fmt.Sprintf("q.%d", i), []byte(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			pending := func() (total int) {
				for _, s := range srcs {
					p, _, _ := s.sub.Pending()
					total += p
				}
				return total
			}
			natstest.WaitFor(t, 10*time.Second, "every message delivered", func() bool { return pending() == tt.wantTotal })
			seen := map[string]int{}
			for _, s := range srcs {
				k, _, _ := s.sub.Pending()
				for range k {
					m, err := s.Read(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					seen[stagetest.PayloadOf(t, m)]++
				}
			}
			for i := range n {
				if got, want := seen[fmt.Sprint(i)], tt.wantTotal/n; got != want {
					t.Errorf("message %d read %d times, want %d", i, got, want)
				}
			}
		})
	}
}

// A full buffer drops messages, which the source logs; what it holds is
// read.
func TestNATSSourceSlowConsumer(t *testing.T) {
	srv := natstest.Server(t)
	client := natstest.Connect(t, srv)
	var logs logBuffer
	src := stagetest.NewSource(t, "nats", map[string]any{"subject": "slow", "buffer": 2}, stages.Info{Conn: natstest.Connect(t, srv), Logger: logs.logger()}).(*natsSource)
	for i := range 10 {
		if err := client.Publish("slow", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	natstest.WaitFor(t, 10*time.Second, "8 messages dropped", func() bool {
		n, _ := src.sub.Dropped()
		return n == 8
	})
	for _, want := range []string{"0", "1"} {
		m, err := src.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := stagetest.PayloadOf(t, m); got != want {
			t.Errorf("read %q, want %q", got, want)
		}
	}
	if got := logs.String(); !strings.Contains(got, "slow consumer") || !strings.Contains(got, "dropped_total=8") {
		t.Errorf("log: %q", got)
	}
	// Nothing more was kept.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if m, err := src.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read past the buffer: %v, %v", m, err)
	}
}

// Close answers the requests left in the buffer 503, so that their
// publishers retry at once; Read after Close fails.
func TestNATSSourceClose(t *testing.T) {
	srv := natstest.Server(t)
	client := natstest.Connect(t, srv)
	var logs logBuffer
	src := stagetest.NewSource(t, "nats", map[string]any{"subject": "c"}, stages.Info{Conn: natstest.Connect(t, srv), Logger: logs.logger()}).(*natsSource)
	inbox, err := client.SubscribeSync(client.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := &nats.Msg{Subject: "c", Data: []byte("x")}
		if i < 2 {
			m.Reply = inbox.Subject
		}
		if err := client.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	natstest.WaitFor(t, 10*time.Second, "3 messages buffered", func() bool {
		n, _, _ := src.sub.Pending()
		return n == 3
	})
	if err := src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r, err := inbox.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("request not answered at close: %v", err)
		}
		if r.Header.Get("Nats-Service-Error-Code") != "503" {
			t.Errorf("answer at close: %s %v", r.Data, r.Header)
		}
	}
	if !strings.Contains(logs.String(), "lost=1") {
		t.Errorf("the message lost at close is not logged: %q", logs.String())
	}
	if _, err := src.Read(context.Background()); err == nil {
		t.Error("Read after Close succeeded")
	}
	if err := src.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
