package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// order is the record of the hop benchmarks, about 220 bytes of JSON.
type order struct {
	ID       int64   `json:"id"`
	Customer string  `json:"customer"`
	Country  string  `json:"country"`
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
	Items    int     `json:"items"`
	Status   string  `json:"status"`
	Note     string  `json:"note"`
	PlacedAt string  `json:"placed_at"`
}

// doubleAmount is a Go transform doing the hop's work the way a
// performance-minded user writes it: decode into a struct, change a
// field, encode.
type doubleAmount struct{}

func (doubleAmount) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	p, err := in.Payload()
	if err != nil {
		return out, err
	}
	var o order
	if err := json.Unmarshal(p, &o); err != nil {
		return out, stages.Permanent(err)
	}
	o.Amount *= 2
	b, err := json.Marshal(&o)
	if err != nil {
		return out, stages.Permanent(err)
	}
	in.SetPayload(b)
	return append(out, in), nil
}

func (doubleAmount) Close(context.Context) error { return nil }

// BenchmarkHop times one stage over b.N records already in its input
// stream, the way the hand-written hop of PERF-ANCHORS.md is measured:
//
//	go test ./runner -run XXX -bench Hop -benchtime 200000x -cpuprofile cpu.out
func BenchmarkHop(b *testing.B) {
	reg := stages.NewRegistry()
	if err := reg.Register(stages.Spec{
		Name:         "double_amount",
		Summary:      "doubles amount in Go",
		NewTransform: func(stages.Params, stages.Info) (stages.Transform, error) { return doubleAmount{}, nil },
	}); err != nil {
		b.Fatal(err)
	}
	for _, hop := range []string{
		`{name: hop, transform: map, with: {expr: 'merge($env, {"amount": amount * 2})'}}`,
		`{name: hop, transform: double_amount}`,
	} {
		name := "expr"
		if hop[len(hop)-14:] == "double_amount}" {
			name = "go"
		}
		b.Run(name, func(b *testing.B) {
			srv := natstest.Server(b)
			nc := natstest.Connect(b, srv)
			p, err := pipeline.Parse("bench.yaml", fmt.Appendf(nil, `
name: hop
settings: {max_buffer: %d}
stages:
  - {name: src, source: generate}
  - %s
`, b.N, hop), pipeline.Options{Registry: reg})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if err := runner.Provision(ctx, nc, p); err != nil {
				b.Fatal(err)
			}
			prefill(b, nc, pipeline.Subject("hop", "src"), b.N)
			b.ReportAllocs()
			b.ResetTimer()
			sum, err := runner.Run(ctx, nc, p, runner.Options{Registry: reg, Stages: []string{"hop"}})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/sum.Elapsed.Seconds(), "msgs/s")
			checkStored(b, nc, pipeline.StreamName("hop", "hop"), b.N)
		})
	}
}

// prefill publishes n order records on subject and waits for the acks.
func prefill(b *testing.B, nc *nats.Conn, subject string, n int) {
	b.Helper()
	var failed atomic.Int64
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { failed.Add(1) }))
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		data, _ := json.Marshal(order{
			ID: int64(i), Customer: fmt.Sprintf("customer-%04d", i%1000), Country: "DE", Amount: float64(i%500) + 0.5,
			Currency: "EUR", Items: i % 7, Status: "new", Note: "a JSON record of about two hundred bytes",
			PlacedAt: "2026-11-24T12:00:00Z",
		})
		m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		m.Header.Set(stages.HeaderMsgID, fmt.Sprintf("prefill/%d", i))
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("prefill: publish acks missing after a minute")
	}
	if n := failed.Load(); n > 0 {
		b.Fatalf("prefill: %d publishes failed", n)
	}
}

// checkStored fails unless stream has stored exactly n messages.
func checkStored(b *testing.B, nc *nats.Conn, stream string, n int) {
	b.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		b.Fatal(err)
	}
	if last := st.CachedInfo().State.LastSeq; last != uint64(n) {
		b.Fatalf("stream %s stored %d messages, want %d", stream, last, n)
	}
}
