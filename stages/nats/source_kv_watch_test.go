package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// change is one record kv_watch yields, or the permanent error it comes
// with.
type change struct {
	payload string
	err     string
}

// readChanges reads n records from src, each within 10s.
func readChanges(t *testing.T, src stages.Source, n int) []change {
	t.Helper()
	var out []change
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := src.Read(ctx)
		cancel()
		if err != nil && !stages.IsPermanent(err) {
			t.Fatalf("read %d: %v", i, err)
		}
		c := change{payload: stagetest.PayloadOf(t, m)}
		if err != nil {
			c.err = err.Error()
		}
		out = append(out, c)
	}
	return out
}

// noMoreChanges checks that src has nothing to read right now.
func noMoreChanges(t *testing.T, src stages.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if m, err := src.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, %v; want nothing more", m, err)
	}
}

func put(t *testing.T, kv jetstream.KeyValue, key, value string) {
	t.Helper()
	if _, err := kv.Put(stagetest.Context(t), key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

func rec(key, value string, rev int, op string) change {
	return change{payload: fmt.Sprintf(`{"key":%q,"op":%q,"revision":%d,"value":%s}`, key, op, rev, value)}
}

func TestKVWatch(t *testing.T) {
	info, js := stagetest.NATSInfo(t)
	tests := []struct {
		name   string
		raw    map[string]any
		before func(kv jetstream.KeyValue) // changes made before the source starts
		want   []change                    // then read
		after  func(kv jetstream.KeyValue) // changes made once it has
		then   []change                    // then read
	}{
		{
			name: "latest values then changes",
			before: func(kv jetstream.KeyValue) {
				put(t, kv, "a", `{"n": 1}`)
				put(t, kv, "a", `{"n": 2}`)
				put(t, kv, "b.c", `plain text`)
			},
			want: []change{rec("a", `{"n":2}`, 2, "put"), rec("b.c", `"plain text"`, 3, "put")},
			after: func(kv jetstream.KeyValue) {
				put(t, kv, "a", `"json string"`)
				kv.Delete(context.Background(), "b.c")
				put(t, kv, "n", `12`)
				put(t, kv, "e", ``)
				put(t, kv, "bin", "\xff\xfe")
			},
			then: []change{
				rec("a", `"json string"`, 4, "put"),
				rec("b.c", "null", 5, "delete"),
				rec("n", "12", 6, "put"),
				rec("e", `""`, 7, "put"),
				{payload: "\xff\xfe", err: `kv_watch: the value of key "bin" at revision 8 is neither JSON nor UTF-8 text`},
			},
		},
		{
			name:   "include history",
			raw:    map[string]any{"include_history": true},
			before: func(kv jetstream.KeyValue) { put(t, kv, "a", "1"); put(t, kv, "a", "2") },
			want:   []change{rec("a", "1", 1, "put"), rec("a", "2", 2, "put")},
		},
		{
			name:   "updates only",
			raw:    map[string]any{"updates_only": true},
			before: func(kv jetstream.KeyValue) { put(t, kv, "a", "1") },
			after:  func(kv jetstream.KeyValue) { put(t, kv, "a", "2") },
			then:   []change{rec("a", "2", 2, "put")},
		},
		{
			name:   "key patterns, deletes skipped",
			raw:    map[string]any{"keys": []any{"x.*", "y.>"}, "deletes": "skip"},
			before: func(kv jetstream.KeyValue) { put(t, kv, "x.1", "1"); put(t, kv, "x.1.2", "2"); put(t, kv, "z", "3") },
			want:   []change{rec("x.1", "1", 1, "put")},
			after: func(kv jetstream.KeyValue) {
				kv.Delete(context.Background(), "x.1")
				put(t, kv, "y.1.2", "4")
			},
			then: []change{rec("y.1.2", "4", 5, "put")},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bucket := fmt.Sprintf("w%d", i)
			kv, err := js.CreateKeyValue(stagetest.Context(t), jetstream.KeyValueConfig{Bucket: bucket, History: 10})
			if err != nil {
				t.Fatal(err)
			}
			if tt.before != nil {
				tt.before(kv)
			}
			raw := map[string]any{"bucket": bucket}
			for k, v := range tt.raw {
				raw[k] = v
			}
			src := stagetest.NewSource(t, "kv_watch", raw, info)
			checkChanges(t, readChanges(t, src, len(tt.want)), tt.want)
			noMoreChanges(t, src)
			if tt.after != nil {
				tt.after(kv)
				checkChanges(t, readChanges(t, src, len(tt.then)), tt.then)
				noMoreChanges(t, src)
			}
		})
	}
}

func checkChanges(t *testing.T, got, want []change) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("change %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

// A record names its key, the time of the change and an ID from the
// bucket and revision.
func TestKVWatchHeaders(t *testing.T) {
	info, js := stagetest.NATSInfo(t)
	kv, err := js.CreateKeyValue(stagetest.Context(t), jetstream.KeyValueConfig{Bucket: "h"})
	if err != nil {
		t.Fatal(err)
	}
	put(t, kv, "k.1", "1")
	src := stagetest.NewSource(t, "kv_watch", map[string]any{"bucket": "h"}, info)
	m, err := src.Read(stagetest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if id := m.Header.Get(stages.HeaderMsgID); id != "h/1" {
		t.Errorf("id %q, want h/1", id)
	}
	if k := m.Header.Get(stages.HeaderKey); k != "k.1" {
		t.Errorf("key %q, want k.1", k)
	}
	if at, err := time.Parse(time.RFC3339Nano, m.Header.Get(stages.HeaderEventTime)); err != nil || time.Since(at) > time.Minute {
		t.Errorf("event time %q, %v", m.Header.Get(stages.HeaderEventTime), err)
	}
}

// A resumed source reads every change after its checkpoint, history
// included, and nothing before it.
func TestKVWatchResume(t *testing.T) {
	info, js := stagetest.NATSInfo(t)
	kv, err := js.CreateKeyValue(stagetest.Context(t), jetstream.KeyValueConfig{Bucket: "r", History: 10})
	if err != nil {
		t.Fatal(err)
	}
	put(t, kv, "a", "1")
	put(t, kv, "b", "2")
	first := stagetest.NewSource(t, "kv_watch", map[string]any{"bucket": "r"}, info)
	checkChanges(t, readChanges(t, first, 2), []change{rec("a", "1", 1, "put"), rec("b", "2", 2, "put")})
	cp, err := first.(stages.Resumable).Checkpoint()
	if err != nil || string(cp) != "2" {
		t.Fatalf("checkpoint %q, %v; want 2", cp, err)
	}
	if err := first.Close(stagetest.Context(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Read(stagetest.Context(t)); !errors.Is(err, stages.ErrSourceClosed) {
		t.Fatalf("read after close: %v", err)
	}

	put(t, kv, "a", "3")
	put(t, kv, "a", "4")
	kv.Delete(stagetest.Context(t), "b")
	second := stagetest.NewSource(t, "kv_watch", map[string]any{"bucket": "r"}, info).(stages.Resumable)
	if err := second.Resume(cp); err != nil {
		t.Fatal(err)
	}
	if cp, _ := second.Checkpoint(); string(cp) != "2" {
		t.Fatalf("checkpoint before a read after resume: %q, want 2", cp)
	}
	checkChanges(t, readChanges(t, second, 3), []change{rec("a", "3", 3, "put"), rec("a", "4", 4, "put"), rec("b", "null", 5, "delete")})
	noMoreChanges(t, second)

	if err := second.Resume([]byte("x")); err == nil || !strings.Contains(err.Error(), "not a revision") {
		t.Fatalf("resume from a bad checkpoint: %v", err)
	}
}
