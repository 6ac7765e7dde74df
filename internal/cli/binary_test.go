package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// buildSluice builds the sluice command once per test binary and returns
// its path. It skips the test with -short or without a go command.
func buildSluice(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command: ", err)
	}
	binary.once.Do(func() {
		if binary.dir, binary.err = os.MkdirTemp("", "sluice-bin-"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "sluice")
		build := exec.Command(goTool, "build", "-o", binary.path, "github.com/sluicehq/sluice/cmd/sluice")
		binary.out, binary.err = build.CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("go build: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}
