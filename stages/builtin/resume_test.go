package builtin

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestSourceResumeErrors(t *testing.T) {
	dir := t.TempDir()
	path := stagetest.WriteFile(t, dir, "in.jsonl", "1\n2\n")
	tests := []struct {
		name, typ  string
		raw        map[string]any
		checkpoint string
		want       string
	}{
		{"not json", "file", map[string]any{"path": path}, "nope", "checkpoint"},
		{"file no longer read", "file", map[string]any{"path": path}, `{"file":"` + dir + `/gone.jsonl","offset":2}`, "not among the files"},
		{"generate", "generate", map[string]any{"count": 2}, "x", "not a record count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := stagetest.NewSource(t, tt.typ, tt.raw, stages.Info{}).(stages.Resumable)
			err := src.Resume([]byte(tt.checkpoint))
			if err == nil || !stagetest.ContainsAll(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("file shrank", func(t *testing.T) {
		src := stagetest.NewSource(t, "file", map[string]any{"path": path}, stages.Info{}).(stages.Resumable)
		if err := src.Resume([]byte(`{"file":"` + path + `","offset":100,"line":9}`)); err != nil {
			t.Fatal(err)
		}
		_, err := src.Read(context.Background())
		if err == nil || !stagetest.ContainsAll(err.Error(), path, "cannot resume at byte 100") {
			t.Fatalf("got %v", err)
		}
	})
}
