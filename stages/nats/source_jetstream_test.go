package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// jsFixture is a server with a stream UP on up.> for the jetstream source.
type jsFixture struct {
	nc *nats.Conn
	js jetstream.JetStream
	st jetstream.Stream
}

func newJSFixture(t *testing.T) *jsFixture {
	t.Helper()
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	js := newJS(t, nc)
	st := createStream(t, js, jetstream.StreamConfig{Name: "UP", Subjects: []string{"up.>"}})
	return &jsFixture{nc: nc, js: js, st: st}
}

func (f *jsFixture) publish(t *testing.T, subject string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if _, err := f.js.Publish(context.Background(), subject, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
}

// consumer returns the state of a consumer of UP.
func (f *jsFixture) consumer(t *testing.T, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := f.st.Consumer(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func readCtx(t *testing.T, src stages.Source) *stages.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := src.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The upstream message is acknowledged only once the runner reports its
// record stored; a record not stored is redelivered, a dead-lettered one
// is not.
func TestJetStreamSourceSettles(t *testing.T) {
	tests := []struct {
		name      string
		outcome   error
		redeliver bool
	}{
		{name: "stored: acked", outcome: nil},
		{name: "not stored: nak'ed and redelivered", outcome: errors.New("not stored: the run stops"), redeliver: true},
		{name: "dead-lettered: terminated", outcome: fmt.Errorf("%w: too large", stages.ErrDeadLettered)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newJSFixture(t)
			durable := fmt.Sprintf("d%d", i)
			src := stagetest.NewSource(t, "jetstream", map[string]any{"stream": "UP", "durable": durable, "nak_delay": "10ms"}, stages.Info{Conn: f.nc})
			f.publish(t, "up.a", `{"n":1}`)
			m := readCtx(t, src)
			if got := m.Header.Get(stages.HeaderMsgID); got != "UP:1" {
				t.Errorf("identity %q, want UP:1", got)
			}
			// Read is not an acknowledgement.
			if err := f.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if info := f.consumer(t, durable); info.NumAckPending != 1 || info.AckFloor.Stream != 0 {
				t.Fatalf("before the runner reported: ack pending %d, ack floor %d", info.NumAckPending, info.AckFloor.Stream)
			}
			m.Ack(tt.outcome)
			if tt.redeliver {
				again := readCtx(t, src)
				if got := again.Header.Get(stages.HeaderMsgID); got != "UP:1" {
					t.Errorf("redelivered with identity %q", got)
				}
				again.Ack(nil)
			}
			natstest.WaitFor(t, 10*time.Second, "the message settled upstream", func() bool {
				info := f.consumer(t, durable)
				return info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == 1
			})
			wantDeliveries := uint64(1)
			if tt.redeliver {
				wantDeliveries = 2
			}
			if info := f.consumer(t, durable); info.Delivered.Consumer != wantDeliveries {
				t.Errorf("deliveries: %d, want %d", info.Delivered.Consumer, wantDeliveries)
			}
		})
	}
}

// The record's headers are the message's, less those NATS or the runner
// interpret, with the stream and sequence as its identity and the subject.
func TestJetStreamSourceHeaders(t *testing.T) {
	f := newJSFixture(t)
	src := stagetest.NewSource(t, "jetstream", map[string]any{"stream": "UP", "durable": "d"}, stages.Info{Conn: f.nc})
	f.publish(t, "up.x", "one")
	msg := nats.NewMsg("up.y")
	msg.Data = []byte("two")
	msg.Header.Set("Nats-Msg-Id", "publisher-id")
	msg.Header.Set("Sluice-Error", "forged")
	msg.Header.Set("Sluice-Event-Time", "2024-05-01T10:00:00Z")
	msg.Header.Set("X-A", "a")
	if _, err := f.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []map[string]string{
		{"payload": "one", stages.HeaderMsgID: "UP:1", HeaderSourceSubject: "up.x"},
		{"payload": "two", stages.HeaderMsgID: "UP:2", HeaderSourceSubject: "up.y", "X-A": "a", stages.HeaderEventTime: "2024-05-01T10:00:00Z", stages.HeaderError: ""},
	} {
		m := readCtx(t, src)
		if got := stagetest.PayloadOf(t, m); got != want["payload"] {
			t.Errorf("payload %q, want %q", got, want["payload"])
		}
		delete(want, "payload")
		for k, v := range want {
			if got := m.Header.Get(k); got != v {
				t.Errorf("header %s: %q, want %q", k, got, v)
			}
		}
		m.Ack(nil)
	}
}

// The consumer is created when missing, with the deliver policy; one that
// exists must be readable as the source reads.
func TestJetStreamSourceConsumer(t *testing.T) {
	tests := []struct {
		name     string
		existing *jetstream.ConsumerConfig // created before the source
		raw      map[string]any
		err      string // part of the start error; "" for none
		want     string // payload of the first record, after "old" and "new" were published around the start
	}{
		{name: "created, all", raw: map[string]any{"stream": "UP", "durable": "c"}, want: "old"},
		{name: "created, new", raw: map[string]any{"stream": "UP", "durable": "c", "deliver": "new"}, want: "new"},
		{name: "created, filtered", raw: map[string]any{"stream": "UP", "durable": "c", "filter_subject": "up.b"}, want: "new"},
		{name: "existing", existing: &jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy}, raw: map[string]any{"stream": "UP", "durable": "c"}, want: "new"},
		{name: "existing with the filter", existing: &jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "up.b"}, raw: map[string]any{"stream": "UP", "durable": "c", "filter_subject": "up.b"}, want: "new"},
		{name: "missing stream", raw: map[string]any{"stream": "NOPE", "durable": "c"}, err: "stream NOPE does not exist"},
		{name: "no acks", existing: &jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckNonePolicy}, raw: map[string]any{"stream": "UP", "durable": "c"}, err: "explicit acks"},
		{name: "other filter", existing: &jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: "up.a"}, raw: map[string]any{"stream": "UP", "durable": "c", "filter_subject": "up.b"}, err: "filters up.a"},
		{name: "push", existing: &jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, DeliverSubject: "push.here"}, raw: map[string]any{"stream": "UP", "durable": "c"}, err: "not a pull consumer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newJSFixture(t)
			f.publish(t, "up.a", "old")
			if tt.existing != nil {
				if tt.existing.DeliverSubject != "" {
					// jetstream makes pull consumers only: a push one
					// goes through the JetStream API of nats.Conn.
					legacy, err := f.nc.JetStream()
					if err != nil {
						t.Fatal(err)
					}
					if _, err := legacy.AddConsumer("UP", &nats.ConsumerConfig{Durable: "c", AckPolicy: nats.AckExplicitPolicy, DeliverSubject: tt.existing.DeliverSubject}); err != nil {
						t.Fatal(err)
					}
				} else if _, err := f.st.CreateConsumer(context.Background(), *tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			spec := stagetest.Lookup(t, stages.RoleSource, "jetstream")
			src, err := spec.NewSource(stagetest.Parse(t, spec, tt.raw), stages.Info{Conn: f.nc})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { src.Close(context.Background()) })
			f.publish(t, "up.b", "new")
			if got := stagetest.PayloadOf(t, readCtx(t, src)); got != tt.want {
				t.Errorf("first record %q, want %q", got, tt.want)
			}
		})
	}
}

// At most max_in_flight records wait for their fate: Read waits for one
// to be settled.
func TestJetStreamSourceMaxInFlight(t *testing.T) {
	f := newJSFixture(t)
	src := stagetest.NewSource(t, "jetstream", map[string]any{"stream": "UP", "durable": "d", "max_in_flight": 2}, stages.Info{Conn: f.nc})
	f.publish(t, "up.a", "1", "2", "3")
	first, second := readCtx(t, src), readCtx(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if m, err := src.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third read with two in flight: %v, %v", m, err)
	}
	first.Ack(nil)
	if got := stagetest.PayloadOf(t, readCtx(t, src)); got != "3" {
		t.Errorf("read %q, want 3", got)
	}
	second.Ack(nil)
}

// While a record waits for its fate, the source keeps the upstream server
// from redelivering it.
func TestJetStreamSourceKeepsRecordsInProgress(t *testing.T) {
	if testing.Short() {
		t.Skip("waits three ack waits")
	}
	f := newJSFixture(t)
	if _, err := f.st.CreateConsumer(context.Background(), jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Second}); err != nil {
		t.Fatal(err)
	}
	src := stagetest.NewSource(t, "jetstream", map[string]any{"stream": "UP", "durable": "d"}, stages.Info{Conn: f.nc})
	f.publish(t, "up.a", "slow")
	m := readCtx(t, src)
	// Watch for three ack waits: without the source's reports, the server
	// would redeliver the message after the first.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if info := f.consumer(t, "d"); info.NumRedelivered != 0 || info.NumAckPending != 1 {
			t.Fatalf("redelivered %d, ack pending %d", info.NumRedelivered, info.NumAckPending)
		}
		time.Sleep(100 * time.Millisecond) // polling, not synchronisation
	}
	m.Ack(nil)
	natstest.WaitFor(t, 10*time.Second, "the message acked", func() bool { return f.consumer(t, "d").NumAckPending == 0 })
}

// Close naks what was pulled ahead and what was read and never settled,
// so that it is redelivered at once; Read after Close fails.
func TestJetStreamSourceCloseNaks(t *testing.T) {
	f := newJSFixture(t)
	spec := stagetest.Lookup(t, stages.RoleSource, "jetstream")
	src, err := spec.NewSource(stagetest.Parse(t, spec, map[string]any{"stream": "UP", "durable": "d"}), stages.Info{Conn: f.nc})
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, "up.a", "1", "2", "3", "4", "5")
	readCtx(t, src) // never settled
	natstest.WaitFor(t, 10*time.Second, "messages pulled ahead", func() bool { return f.consumer(t, "d").NumAckPending == 5 })
	if err := src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// With the consumer's ack wait of 30s, only naks give them to another
	// reader now.
	c, err := f.st.Consumer(context.Background(), "d")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(5, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for jm := range batch.Messages() {
		got++
		_ = jm.Ack()
	}
	if got != 5 {
		t.Errorf("another reader got %d messages at once, want 5 (err %v)", got, batch.Error())
	}
	if _, err := src.Read(context.Background()); err == nil {
		t.Error("Read after Close succeeded")
	}
	if err := src.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Lag is the age of the last record read while more wait upstream, and 0
// once the source has read everything (or nothing yet).
func TestJetStreamSourceLag(t *testing.T) {
	f := newJSFixture(t)
	src := stagetest.NewSource(t, "jetstream", map[string]any{"stream": "UP", "durable": "lag"}, stages.Info{Conn: f.nc})
	lagging, ok := src.(stages.Lagging)
	if !ok {
		t.Fatal("the jetstream source does not report its lag")
	}
	if d := lagging.Lag(); d != 0 {
		t.Errorf("lag before a read: %s, want 0", d)
	}
	f.publish(t, "up.a", `{"n":1}`, `{"n":2}`, `{"n":3}`)
	m := readCtx(t, src)
	if d := lagging.Lag(); d <= 0 || d > time.Minute {
		t.Errorf("lag with two records waiting: %s, want the first one's age", d)
	}
	m.Ack(nil)
	for range 2 {
		readCtx(t, src).Ack(nil)
	}
	if d := lagging.Lag(); d != 0 {
		t.Errorf("lag with nothing waiting: %s, want 0", d)
	}
}
