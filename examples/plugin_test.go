package examples_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// TestPluginExample builds examples/plugin as a Go plugin and a sluice
// binary, as the README does, and runs the example's pipeline with them.
// It runs sluice as a subprocess: a plugin must be built exactly as the
// program that loads it, which a test binary is not.
func TestPluginExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin and the sluice binary")
	}
	if !stages.PluginsSupported {
		t.Skip("Go plugins are not supported on this platform or without cgo")
	}
	if _, err := exec.LookPath("gcc"); err != nil && os.Getenv("CC") == "" {
		t.Skip("building a Go plugin needs cgo and a C compiler: gcc not found (apt-get install gcc)")
	}
	root := t.TempDir() // stands for the repository root
	dir := filepath.Join(root, "examples", "plugin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pipeline.yaml", "users.jsonl"} {
		b, err := os.ReadFile(filepath.Join("plugin", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(root, "sluice")
	for _, args := range [][]string{
		{"build", "-buildmode=plugin", "-o", filepath.Join(dir, "redact.so"), "./plugin"},
		{"build", "-o", bin, "../cmd/sluice"},
	} {
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	cmd := exec.Command(bin, "run", "--store-dir", t.TempDir(), "examples/plugin/pipeline.yaml")
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sluice run: %v\nstderr:\n%s", err, &stderr)
	}
	want := `id=1 name="Ada Lovelace" email=b5fc85e55755 plan=pro
id=2 name="Alan Turing" email=61356ceff753 plan=free
id=3 name="Grace Hopper" email=b533d4547eaa plan=pro
id=4 name="Edsger Dijkstra" email=b5fc85e55755 plan=team
`
	if stdout.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, want)
	}
	if !strings.Contains(stderr.String(), "hide  transform  redact   5    4         0       0             1") {
		t.Errorf("want one dead letter at hide; stderr:\n%s", &stderr)
	}
}
