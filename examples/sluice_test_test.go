package examples_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/cli"
)

// TestExamplesSluiceTest runs `sluice test ./examples/...` from the
// repository root, as CI and the READMEs do: every example's
// pipeline_test.yaml must pass. The exec example's runs a Python script:
// without python3 it is left out.
func TestExamplesSluiceTest(t *testing.T) {
	t.Chdir("..")
	files, err := filepath.Glob("examples/*/*_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"etl", "fanout", "clickstream", "resume", "cluster", "exec"} {
		if !slices.Contains(files, "examples/"+want+"/pipeline_test.yaml") {
			t.Errorf("examples/%s has no pipeline_test.yaml", want)
		}
	}
	args := []string{"test", "-v", "./examples/..."}
	if err := exec.Command("python3", "-c", "import json").Run(); err != nil {
		t.Logf("no python3 with its standard library (%v): the exec example's tests are left out", err)
		args = []string{"test", "-v"}
		for _, f := range files {
			if !strings.HasPrefix(f, "examples/exec/") {
				args = append(args, f)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &stdout, &stderr)
	if code != cli.ExitOK {
		t.Fatalf("sluice %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	for _, f := range files {
		if !strings.Contains(stdout.String(), "ok\t"+f) && !strings.HasPrefix(f, "examples/exec/") {
			t.Errorf("no ok line for %s:\n%s", f, stdout.String())
		}
	}
	t.Log(stdout.String())
}
