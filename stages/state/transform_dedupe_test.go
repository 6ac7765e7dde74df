package state

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// dedupeStep is one input of a dedupe sequence and what becomes of it.
type dedupeStep struct {
	payload string
	id      string // its Nats-Msg-Id, "" for none
	meta    stages.Meta
	pass    bool
	wantErr string // a permanent error containing this
}

func TestDedupe(t *testing.T) {
	info, _ := stagetest.NATSInfo(t)
	tests := []struct {
		name  string
		key   string
		steps []dedupeStep
	}{
		{"first of a key passes", "id", []dedupeStep{
			{payload: `{"id": 1}`, id: "p/a/1.0", pass: true},
			{payload: `{"id": 1, "x": 2}`, id: "p/a/2.0"},
			{payload: `{"id": 2}`, id: "p/a/3.0", pass: true},
			{payload: `{"id": "1"}`, id: "p/a/4.0", pass: true}, // a string is another key
			{payload: `{"id": 1}`, id: "p/a/5.0"},
		}},
		{"a redelivered input passes again", "id", []dedupeStep{
			{payload: `{"id": 1}`, id: "p/a/1.0", pass: true},
			{payload: `{"id": 1}`, id: "p/a/1.0", pass: true},
			{payload: `{"id": 1}`, id: "p/a/1.0/replay17", pass: true},
			{payload: `{"id": 1}`, id: "p/a/1.0/replay17/replay20", pass: true},
			{payload: `{"id": 1}`, id: "p/a/1.1"},
		}},
		{"without an id the stream position names the input", "id", []dedupeStep{
			{payload: `{"id": 1}`, meta: stages.Meta{Stream: "S", Sequence: 4}, pass: true},
			{payload: `{"id": 1}`, meta: stages.Meta{Stream: "S", Sequence: 4, Deliveries: 2}, pass: true},
			{payload: `{"id": 1}`, meta: stages.Meta{Stream: "S", Sequence: 5}},
		}},
		{"no identity at all is never a redelivery", "id", []dedupeStep{
			{payload: `{"id": 1}`, pass: true},
			{payload: `{"id": 1}`},
		}},
		{"composite key", "[customer, order]", []dedupeStep{
			{payload: `{"customer": "a", "order": 1}`, id: "1", pass: true},
			{payload: `{"customer": "a", "order": 2}`, id: "2", pass: true},
			{payload: `{"order": 1, "customer": "a", "more": true}`, id: "3"},
		}},
		{"bad records", "id", []dedupeStep{
			{payload: `{"other": 1}`, id: "1", wantErr: `the key expression "id" gave null`},
			{payload: `{"id": `, id: "2", wantErr: "invalid JSON"},
			{payload: `[1]`, id: "3", wantErr: "not an object"},
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := info
			info.Stage = fmt.Sprintf("s%d", i) // a bucket of its own
			tr := stagetest.NewInfoTransform(t, "dedupe", map[string]any{"key": tt.key}, info)
			for j, st := range tt.steps {
				in := stagetest.WithID(st.payload, st.id)
				in.Meta = st.meta
				out, err := tr.Process(stagetest.Context(t), in, nil)
				if st.wantErr != "" {
					if !stages.IsPermanent(err) || !strings.Contains(err.Error(), st.wantErr) {
						t.Fatalf("step %d: got %v, want a permanent error with %q", j, err, st.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", j, err)
				}
				if pass := len(out) == 1 && out[0] == in; pass != st.pass || len(out) > 1 {
					t.Fatalf("step %d (%s, id %q): got %d outputs, want pass=%v", j, st.payload, st.id, len(out), st.pass)
				}
			}
		})
	}
}

// Two workers, as two instances of the stage, racing on the same keys let
// exactly one record of each key through; a third instance built after
// they closed, as after a restart, remembers every key.
func TestDedupeWorkersAndRestart(t *testing.T) {
	info, _ := stagetest.NATSInfo(t)
	const keys = 40
	raw := map[string]any{"key": "k"}
	var passed [keys]int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 2 {
		tr := stagetest.NewInfoTransform(t, "dedupe", raw, info)
		wg.Go(func() {
			for k := range keys {
				out, err := tr.Process(stagetest.Context(t), stagetest.WithID(fmt.Sprintf(`{"k": %d}`, k), fmt.Sprintf("w%d/%d", w, k)), nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				passed[k] += len(out)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for k, n := range passed {
		if n != 1 {
			t.Errorf("key %d passed %d times, want 1", k, n)
		}
	}

	later := stagetest.NewInfoTransform(t, "dedupe", raw, info)
	for k := range keys {
		out, err := later.Process(stagetest.Context(t), stagetest.WithID(fmt.Sprintf(`{"k": %d}`, k), fmt.Sprintf("later/%d", k)), nil)
		if err != nil || len(out) != 0 {
			t.Fatalf("key %d after a restart: %d outputs, %v; want it filtered", k, len(out), err)
		}
	}
}

// A key is forgotten ttl after it was first seen; the stage sets the ttl
// of a bucket that exists with another.
func TestDedupeTTL(t *testing.T) {
	info, js := stagetest.NATSInfo(t)
	stagetest.NewInfoTransform(t, "dedupe", map[string]any{"key": "k", "ttl": "1h"}, info)
	tr := stagetest.NewInfoTransform(t, "dedupe", map[string]any{"key": "k", "ttl": "1s"}, info)
	kv, err := js.KeyValue(stagetest.Context(t), dedupeBucket("p", "s"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(stagetest.Context(t))
	if err != nil || st.TTL() != time.Second {
		t.Fatalf("bucket ttl: %v, %v; want 1s", st.TTL(), err)
	}
	process := func(id string) int {
		out, err := tr.Process(stagetest.Context(t), stagetest.WithID(`{"k": 1}`, id), nil)
		if err != nil {
			t.Fatal(err)
		}
		return len(out)
	}
	if process("a") != 1 || process("b") != 0 {
		t.Fatal("the second record of a key passed")
	}
	n := 0
	natstest.WaitFor(t, 10*time.Second, "the key to be forgotten", func() bool {
		n++
		return process(fmt.Sprintf("c%d", n)) == 1
	})
}

func TestDedupeClosed(t *testing.T) {
	info, _ := stagetest.NATSInfo(t)
	tr := stagetest.NewInfoTransform(t, "dedupe", map[string]any{"key": "k"}, info)
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Process(stagetest.Context(t), stagetest.WithID(`{"k": 1}`, "a"), nil); err == nil {
		t.Fatal("Process after Close succeeded")
	}
}
