package dlq

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/stages"
)

// A replay is a new read: it carries the record's own headers, not the
// dead letter's nor the read time of its first way through.
func TestReplayMessageHeaders(t *testing.T) {
	dl := DeadLetter{Seq: 4, Stage: "work", Run: 2, Subject: "sluice.p.gen", Data: []byte(`{}`), Header: nats.Header{
		stages.HeaderReadTime: {"1700000000000000000"},
		stages.HeaderError:    {"boom"},
		stages.HeaderInputID:  {"p/gen/r2/7"},
		stages.HeaderKey:      {"k"},
		"X-Own":               {"kept"},
	}}
	m, err := replayMessage("p", dl, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{stages.HeaderReadTime, stages.HeaderError, stages.HeaderInputID} {
		if v := m.Header.Values(gone); len(v) > 0 {
			t.Errorf("replay carries %s: %q", gone, v)
		}
	}
	for _, kept := range []string{stages.HeaderKey, "X-Own"} {
		if m.Header.Get(kept) == "" {
			t.Errorf("replay lost %s", kept)
		}
	}
}
