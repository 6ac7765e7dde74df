package nats

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestKVSink(t *testing.T) {
	info, js := stagetest.NATSInfo(t)
	tests := []struct {
		name  string
		raw   map[string]any
		in    []string
		want  map[string]string // key -> value after the write; "" for absent
		errs  []string          // per record: "" or a permanent error containing this
		setup func(kv jetstream.KeyValue)
	}{
		{
			name: "the payload under a key",
			raw:  map[string]any{"key": `"order." + string(id)`},
			in:   []string{`{"id": 1, "n": 2}`, `{"id": 2}`},
			want: map[string]string{"order.1": `{"id": 1, "n": 2}`, "order.2": `{"id": 2}`},
		},
		{
			name: "numbers as keys, the last record of a key wins",
			raw:  map[string]any{"key": `id`, "value": `v`},
			in:   []string{`{"id": 7, "v": "a"}`, `{"id": 7.0, "v": "b"}`, `{"id": 8, "v": {"x": [1]}}`},
			want: map[string]string{"7": "b", "8": `{"x":[1]}`},
		},
		{
			name:  "delete",
			raw:   map[string]any{"key": `key`, "value": `value`, "delete": `op == "delete"`},
			setup: func(kv jetstream.KeyValue) { kv.Put(context.Background(), "gone", []byte("x")) },
			in:    []string{`{"key": "gone", "op": "delete"}`, `{"key": "kept", "op": "put", "value": 3}`},
			want:  map[string]string{"gone": "", "kept": "3"},
		},
		{
			name: "bad records fail alone",
			raw:  map[string]any{"key": `k`, "delete": `d`},
			in: []string{
				`{"k": "a b"}`,
				`{"k": "ok", "d": false}`,
				`{"k": ".x"}`,
				`{"other": 1}`,
				`{"k": [1]}`,
				`not json`,
				`{"k": "x", "d": 1}`,
			},
			want: map[string]string{"ok": `{"k": "ok", "d": false}`},
			errs: []string{
				`invalid key: key "a b" has ' ' at byte 1`,
				"",
				`key ".x" has an empty token`,
				"the key expression gave null",
				"the key expression gave a array",
				"invalid JSON",
				"the delete expression gave a number",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bucket := strings.ReplaceAll(tt.name, " ", "_")
			bucket = strings.ReplaceAll(bucket, ",", "")
			raw := map[string]any{"bucket": bucket}
			for k, v := range tt.raw {
				raw[k] = v
			}
			if tt.setup != nil {
				kv, err := js.CreateKeyValue(stagetest.Context(t), jetstream.KeyValueConfig{Bucket: bucket})
				if err != nil {
					t.Fatal(err)
				}
				tt.setup(kv)
			}
			sk := stagetest.NewSink(t, "kv", raw, info)
			err := sk.Write(stagetest.Context(t), stagetest.Msgs(tt.in...))
			if tt.errs == nil && err != nil {
				t.Fatal(err)
			}
			if tt.errs != nil {
				var be *stages.BatchError
				if !errors.As(err, &be) || len(be.Errs) != len(tt.in) {
					t.Fatalf("got %v, want a batch error", err)
				}
				for i, want := range tt.errs {
					got := be.Errs[i]
					if want == "" && got != nil || want != "" && (!stages.IsPermanent(got) || !strings.Contains(got.Error(), want)) {
						t.Errorf("record %d: got %v, want %q", i, got, want)
					}
				}
			}
			kv, err := js.KeyValue(stagetest.Context(t), bucket)
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range tt.want {
				e, err := kv.Get(stagetest.Context(t), key)
				switch {
				case want == "" && !errors.Is(err, jetstream.ErrKeyNotFound):
					t.Errorf("key %s: got %v, want it deleted", key, err)
				case want != "" && (err != nil || string(e.Value()) != want):
					t.Errorf("key %s: got %v, want %q", key, err, want)
				case want != "" && string(e.Value()) != want:
					t.Errorf("key %s: got %q, want %q", key, e.Value(), want)
				}
			}
		})
	}
}

// The sink creates a bucket that is missing, with the pipeline's
// defaults, and uses an existing one as it is; it refuses to write once
// closed.
func TestKVSinkBucket(t *testing.T) {
	info, js := stagetest.NATSInfo(t)
	if _, err := js.CreateKeyValue(stagetest.Context(t), jetstream.KeyValueConfig{Bucket: "mine", History: 5}); err != nil {
		t.Fatal(err)
	}
	for bucket, history := range map[string]int64{"mine": 5, "new": 1} {
		sk := stagetest.NewSink(t, "kv", map[string]any{"bucket": bucket, "key": "k"}, info)
		if err := sk.Write(stagetest.Context(t), stagetest.Msgs(`{"k": "a"}`)); err != nil {
			t.Fatal(err)
		}
		kv, err := js.KeyValue(stagetest.Context(t), bucket)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(stagetest.Context(t))
		if err != nil || st.History() != history || st.Values() != 1 {
			t.Errorf("bucket %s: history %d, %d values, %v; want history %d, 1 value", bucket, st.History(), st.Values(), err, history)
		}
		if err := sk.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := sk.Write(stagetest.Context(t), stagetest.Msgs(`{"k": "a"}`)); !errors.Is(err, stages.ErrSinkClosed) {
			t.Errorf("write after close: got %v", err)
		}
	}
}
