package builtin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestSinkParams(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		typ   string
		Raw   map[string]any
		param string
	}{
		{"stdout", map[string]any{"columns": "a"}, "columns"},
		{"stdout", map[string]any{"format": "csv", "columns": []any{}}, "columns"},
		{"stdout", map[string]any{"format": "csv", "columns": []any{"a", "a"}}, "columns"},
		{"stdout", map[string]any{"format": "xml"}, "format"},
		{"file", map[string]any{}, "path"},
		{"file", map[string]any{"path": ""}, "path"},
		{"file", map[string]any{"path": filepath.Join(dir, "o.jsonl"), "columns": "a"}, "columns"},
		{"file", map[string]any{"path": filepath.Join(dir, "o.csv"), "format": "jsonl", "columns": "a"}, "columns"},
		{"file", map[string]any{"path": filepath.Join(dir, "o.csv"), "mode": "truncate"}, "mode"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			_, errs := stagetest.Lookup(t, stages.RoleSink, tt.typ).ParseParams(tt.Raw)
			var pe *stages.ParamError
			if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], stages.ErrInvalidParam) {
				t.Fatalf("params %v: got %v, want one error on %s", tt.Raw, errs, tt.param)
			}
		})
	}
}

func TestSinkConcurrentWrites(t *testing.T) {
	const writers, batches, size = 8, 25, 20
	for _, typ := range []string{"file", "stdout"} {
		t.Run(typ, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "o.jsonl")
			out := &stagetest.LockedBuffer{}
			raw := map[string]any{"path": path}
			if typ == "stdout" {
				raw = nil
			}
			sk := stagetest.NewSink(t, typ, raw, stages.Info{Stdout: out})
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					for b := range batches {
						batch := make([]*stages.Message, size)
						for i := range batch {
							batch[i] = stages.NewValueMessage(map[string]any{"w": w, "b": b, "i": i, "pad": strings.Repeat("x", 100)})
						}
						if err := sk.Write(context.Background(), batch); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if typ == "file" {
				got = stagetest.ReadString(t, path)
			}
			seen := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				v, err := stages.DecodeJSON([]byte(line))
				if err != nil {
					t.Fatalf("torn line %q: %v", line, err)
				}
				rec := v.(map[string]any)
				seen[fmt.Sprint(rec["w"], rec["b"], rec["i"])] = true
			}
			if len(seen) != writers*batches*size {
				t.Fatalf("got %d distinct records, want %d", len(seen), writers*batches*size)
			}
		})
	}
}
