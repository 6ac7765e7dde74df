package stagetest

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
)

// SinkCase writes batches to a sink and checks what it wrote.
type SinkCase struct {
	Name    string
	Raw     map[string]any
	Batches [][]*stages.Message
	Bad     [][]int // per batch, the indexes of the messages that fail
	Want    string
}

// SinkCases returns the cases every sink that writes records in a
// format passes.
func SinkCases() []SinkCase {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	return []SinkCase{
		{
			Name: "jsonl",
			Batches: [][]*stages.Message{
				append(Msgs(`{"a":1}`, "{\n  \"c\": [1,\n 2]\n}", "not json", `{"d":"x"}`, ""),
					stages.NewValueMessage(map[string]any{"b": "<&>"}), stages.NewValueMessage(math.NaN())),
				Msgs(`"s"`),
			},
			Bad:  [][]int{{2, 4, 6}, nil},
			Want: "{\"a\":1}\n{\"c\":[1,2]}\n{\"d\":\"x\"}\n{\"b\":\"<&>\"}\n\"s\"\n",
		},
		{
			Name: "csv with inferred columns",
			Raw:  map[string]any{"format": "csv"},
			Batches: [][]*stages.Message{
				Msgs(`{"b":2,"a":"x"}`, `[1]`, `{"a":"y,z","b":null,"c":1}`),
				append(Msgs(`{"a":[1,"q"],"b":{"k":true}}`, `{"a":1.5,"b":1e21}`, `{"a":9007199254740993,"b":false}`, `{"b":"line\nbreak"}`, `nope`),
					stages.NewValueMessage(map[string]any{"a": at, "b": 3})),
			},
			Bad:  [][]int{{1}, {4}},
			Want: "a,b\nx,2\n\"y,z\",\n\"[1,\"\"q\"\"]\",\"{\"\"k\"\":true}\"\n1.5,1e+21\n9007199254740993,false\n,\"line\nbreak\"\n2024-05-01T12:00:00Z,3\n",
		},
		{
			Name:    "csv with columns",
			Raw:     map[string]any{"format": "csv", "columns": []any{"b", "a"}},
			Batches: [][]*stages.Message{Msgs(`{"a":1,"b":2,"c":3}`), Msgs(`{"a":4}`)},
			Want:    "b,a\n2,1\n,4\n",
		},
		{
			Name:    "csv header waits for a good record",
			Raw:     map[string]any{"format": "csv"},
			Batches: [][]*stages.Message{Msgs(`1`), Msgs(`{"z":1}`)},
			Bad:     [][]int{{0}, nil},
			Want:    "z\n1\n",
		},
		{
			Name:    "lines writes payloads as they are",
			Raw:     map[string]any{"format": "lines"},
			Batches: [][]*stages.Message{Msgs("plain text", `{"a":1}`, "not json, kept"), Msgs("")},
			Want:    "plain text\n{\"a\":1}\nnot json, kept\n\n",
		},
		{Name: "empty batch", Batches: [][]*stages.Message{nil}, Want: ""},
	}
}

// RunSinkCase writes the case's batches to sk and checks the errors.
func RunSinkCase(t *testing.T, sk stages.Sink, tt SinkCase) {
	t.Helper()
	for i, batch := range tt.Batches {
		err := sk.Write(context.Background(), batch)
		var bad []int
		if i < len(tt.Bad) {
			bad = tt.Bad[i]
		}
		if len(bad) == 0 {
			if err != nil {
				t.Fatalf("batch %d: %v", i, err)
			}
			continue
		}
		var be *stages.BatchError
		if !errors.As(err, &be) || len(be.Errs) != len(batch) {
			t.Fatalf("batch %d: got %v, want a BatchError", i, err)
		}
		for j, e := range be.Errs {
			if slices.Contains(bad, j) != (e != nil) || (e != nil && !stages.IsPermanent(e)) {
				t.Errorf("batch %d message %d: error %v", i, j, e)
			}
		}
	}
}

// ReadString returns the content of the file at path.
func ReadString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// LockedBuffer is a bytes.Buffer for a sink that is expected to serialise
// its writes; the lock only keeps the race detector honest about it.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p under the lock.
func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
