package file

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// A path-based stage built on a path that does not exist says which.
func TestBuiltinConformanceMissingPath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope", "in.jsonl")
	s := stagetest.Lookup(t, stages.RoleSource, "file")
	_, err := s.NewSource(stagetest.Parse(t, s, map[string]any{"path": missing}), stages.Info{})
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("file source on a missing path: got %v", err)
	}
}
