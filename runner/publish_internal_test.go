package runner

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
)

// orderStream creates stream OUT like a stage's output stream under
// backpressure (see streamConfig): interest retention, at most maxMsgs
// messages and new ones refused while full, fast batches, a dedup window.
// Its durable consumer, which keeps what is published, is returned.
func orderStream(t *testing.T, js jetstream.JetStream, maxMsgs int64) (jetstream.Stream, jetstream.Consumer) {
	t.Helper()
	ctx := context.Background()
	str, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:              "OUT",
		Subjects:          []string{"out.>"},
		Retention:         jetstream.InterestPolicy,
		MaxMsgs:           maxMsgs,
		Discard:           jetstream.DiscardNew,
		Duplicates:        time.Minute,
		AllowBatchPublish: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := str.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "down", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	return str, cons
}

// received records the IDs of the messages a consumer is delivered, by
// stream sequence.
type received struct {
	mu  sync.Mutex
	ids map[uint64]string
}

// consume acknowledges what cons delivers as it comes, which makes room
// in the stream, and records it, until the test ends.
func consume(t *testing.T, cons jetstream.Consumer) *received {
	t.Helper()
	r := &received{ids: make(map[uint64]string)}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if md, err := m.Metadata(); err == nil {
			r.mu.Lock()
			r.ids[md.Sequence.Stream] = m.Headers().Get(stages.HeaderMsgID)
			r.mu.Unlock()
		}
		_ = m.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Stop()
		<-cc.Closed()
	})
	return r
}

// inOrder returns the IDs received, in stream order.
func (r *received) inOrder() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seqs := make([]uint64, 0, len(r.ids))
	for seq := range r.ids {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	ids := make([]string, len(seqs))
	for i, seq := range seqs {
		ids[i] = r.ids[seq]
	}
	return ids
}

// drained waits until the consumer of str acknowledged everything in it:
// the interest stream is empty then.
func drained(t *testing.T, str jetstream.Stream) {
	t.Helper()
	natstest.WaitFor(t, 10*time.Second, "the consumer to have everything", func() bool {
		info, err := str.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
}

// storedIDs returns the IDs of the messages in str, in stream order. (A
// consumer reading them would hold on to the messages of the interest
// stream.)
func storedIDs(t *testing.T, str jetstream.Stream) []string {
	t.Helper()
	ctx := context.Background()
	info, err := str.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := str.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		ids = append(ids, m.Header.Get(stages.HeaderMsgID))
	}
	return ids
}

// output returns a message for stream OUT with ID and body id.
func output(id string) *nats.Msg {
	m := nats.NewMsg("out.x")
	m.Data = []byte(id)
	m.Header.Set(stages.HeaderMsgID, id)
	return m
}

// publishBatches publishes batches batches of n outputs, "<batch>-<i>",
// through pub, waiting for each batch, and returns the IDs in the order
// published.
func publishBatches(ctx context.Context, pub *publishBatch, batches, n int) ([]string, error) {
	var ids []string
	for bi := range batches {
		pub.reset()
		for i := range n {
			id := fmt.Sprintf("%d-%d", bi, i)
			ids = append(ids, id)
			pub.addOutput(output(id))
		}
		if left := pub.wait(ctx); left > 0 {
			return ids, fmt.Errorf("batch %d: %d messages not published: %w", bi, left, pub.err(pub.ackedPrefix()))
		}
	}
	return ids, nil
}

// sameOrder fails the test unless got is want, and says where they part.
func sameOrder(t *testing.T, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("stream holds %d messages, want %d; at %d it holds %s, want %s (around it: %v)",
				len(got), len(want), i, got[i], want[i], got[max(0, i-3):min(len(got), i+4)])
		}
	}
	t.Fatalf("stream holds %d messages, want %d", len(got), len(want))
}

// TestPublishBatchOrderedUnderBackpressure publishes batches of outputs in
// ordered mode into a stream that is full from the first batch on, while a
// consumer acknowledges concurrently and so makes room between refused
// publishes: the stream receives every output once, in the order added.
// One by one is the mode without fast batches.
func TestPublishBatchOrderedUnderBackpressure(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fastOK     bool
		batches, n int
	}{
		{"fast batches", true, 5, 400},
		{"one by one", false, 3, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc := natstest.Connect(t, natstest.Server(t))
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			const maxMsgs = 200
			str, cons := orderStream(t, js, maxMsgs)
			pub := &publishBatch{js: js, fastOK: tc.fastOK, ordered: true}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			type result struct {
				ids []string
				err error
			}
			done := make(chan result, 1)
			go func() {
				ids, err := publishBatches(ctx, pub, tc.batches, tc.n)
				done <- result{ids, err}
			}()
			// The consumer starts once the stream is full, so that the
			// publisher is refused until the consumer makes room.
			natstest.WaitFor(t, 10*time.Second, "the stream to fill up", func() bool {
				info, err := str.Info(ctx)
				return err == nil && info.State.Msgs == maxMsgs
			})
			r := consume(t, cons)
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			drained(t, str)
			sameOrder(t, r.inOrder(), res.ids)
		})
	}
}

// TestPublishBatchOrderedFastBatchCutShort has the stream refuse a fast
// batch part of the way: what is stored is the batch up to the refused
// message, the batch learns that much, and once there is room the rest
// follows in order.
func TestPublishBatchOrderedFastBatchCutShort(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	str, cons := orderStream(t, js, 200)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var want []string
	for i := range 150 {
		id := fmt.Sprintf("pre-%d", i)
		want = append(want, id)
		if _, err := js.PublishMsg(ctx, output(id)); err != nil {
			t.Fatal(err)
		}
	}

	// Room for 50 of the 300 outputs, sent in one fast batch as added.
	pub := &publishBatch{js: js, fastOK: true, ordered: true}
	pub.reset()
	for i := range 300 {
		id := fmt.Sprintf("out-%d", i)
		want = append(want, id)
		pub.addOutput(output(id))
	}
	natstest.WaitFor(t, 10*time.Second, "the first 50 outputs known stored", func() bool {
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		left := pub.wait(wctx)
		return left == 250 && pub.ackedPrefix() == 50
	})
	sameOrder(t, storedIDs(t, str), want[:200])

	r := consume(t, cons)
	if left := pub.wait(ctx); left > 0 {
		t.Fatalf("%d messages not published: %v", left, pub.err(pub.ackedPrefix()))
	}
	drained(t, str)
	sameOrder(t, r.inOrder(), want)
}

// TestPublishBatchOrderedDeadLetters mixes dead letters, which keep no
// order, into an ordered batch: both are published, the outputs in order.
func TestPublishBatchOrderedDeadLetters(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	str, _ := orderStream(t, js, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dlq, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	pub := &publishBatch{js: js, fastOK: true, ordered: true}
	pub.reset()
	var want []string
	for i := range 100 {
		id := fmt.Sprintf("out-%d", i)
		want = append(want, id)
		pub.addOutput(output(id))
		if i%10 == 0 {
			m := output(fmt.Sprintf("dead-%d", i))
			m.Subject = "dlq.x"
			pub.add(m)
		}
	}
	if left := pub.wait(ctx); left > 0 {
		t.Fatalf("%d messages not published: %v", left, pub.err(pub.ackedPrefix()))
	}
	if n := pub.ackedPrefix(); n != pub.len() {
		t.Fatalf("%d of %d messages acknowledged", n, pub.len())
	}
	sameOrder(t, storedIDs(t, str), want)
	if got := len(storedIDs(t, dlq)); got != 10 {
		t.Fatalf("%d dead letters stored, want 10", got)
	}
}

// BenchmarkPublishBatch publishes b.N small outputs in batches of 1000
// into a stream with room for all, unordered and ordered, and reports
// msgs/s.
//
//	go test ./runner -run XXX -bench PublishBatch -benchtime 200000x
func BenchmarkPublishBatch(b *testing.B) {
	const batch = 1000
	for _, ordered := range []bool{false, true} {
		b.Run(fmt.Sprintf("ordered=%t", ordered), func(b *testing.B) {
			nc := natstest.Connect(b, natstest.Server(b))
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name: "OUT", Subjects: []string{"out.>"}, Duplicates: time.Minute, AllowBatchPublish: true,
			}); err != nil {
				b.Fatal(err)
			}
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("bench/out/%d", i)
			}
			pub := &publishBatch{js: js, fastOK: true, ordered: ordered}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				pub.reset()
				for end := min(i+batch, b.N); i < end; i++ {
					pub.addOutput(output(ids[i]))
				}
				if left := pub.wait(ctx); left > 0 {
					b.Fatalf("%d messages not published", left)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
