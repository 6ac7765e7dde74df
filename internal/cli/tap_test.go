package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// TestTapSkips: tap prints the records of a stage's stream once each,
// and skips control messages, replays and a record stored twice.
func TestTapSkips(t *testing.T) {
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: schema.StreamName("p", "s"), Subjects: schema.StreamSubjects("p", "s"),
		Retention: jetstream.InterestPolicy, Duplicates: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var tapErr error
	var wg sync.WaitGroup
	wg.Go(func() { tapErr = tap(ctx, nc, "p", "s", tapOptions{n: 3}, &out) })
	natstest.WaitFor(t, time.Minute, "tap's consumer", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Consumers == 1
	})

	publish := func(subject, id, control, data string) *jetstream.PubAck {
		m := nats.NewMsg(subject)
		m.Header.Set(stages.HeaderMsgID, id)
		if control != "" {
			m.Header.Set(stages.HeaderControl, control)
		}
		m.Data = []byte(data)
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	subj := schema.Subject("p", "s")
	publish(subj, "a", "", `{"n": 1}`)
	publish(subj, "b", "watermark", ``)
	publish(schema.ReplaySubject("p", "s", "t"), "c", "", `{"n": "replayed"}`)
	publish(subj+".route", "d", "", "not json")
	// Record a again, once the stream's deduplication window has let it
	// in a second time.
	natstest.WaitFor(t, time.Minute, "record a stored twice", func() bool {
		return !publish(subj, "a", "", `{"n": 1}`).Duplicate
	})
	publish(subj, "e", "", `{"n":  3}`)
	wg.Wait()
	if tapErr != nil {
		t.Fatal(tapErr)
	}
	if want := "{\"n\":1}\n\"not json\"\n{\"n\":3}\n"; out.String() != want {
		t.Errorf("tap printed:\n%s\nwant:\n%s", out.String(), want)
	}
	natstest.WaitFor(t, time.Minute, "tap's consumer deleted", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Consumers == 0
	})
	if s := out.String(); strings.Contains(s, "replayed") {
		t.Errorf("tap printed a replay:\n%s", s)
	}
}
