package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// buildPlugin builds the package pkg with -buildmode=plugin into dir and
// returns the file. It skips the test where Go cannot build plugins.
func buildPlugin(t *testing.T, pkg, dir string) string {
	t.Helper()
	if !stages.PluginsSupported {
		t.Skip("Go plugins are not supported on this platform or without cgo")
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc" // what the go command uses by default
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("building a Go plugin needs cgo and a C compiler: %s not found (apt-get install gcc)", cc)
	}
	out := filepath.Join(dir, filepath.Base(pkg)+".so")
	build := exec.Command("go", "build", "-buildmode=plugin", "-o", out, pkg)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildmode=plugin %s: %v\n%s", pkg, err, b)
	}
	return out
}

func TestPlugins(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	redact := buildPlugin(t, "github.com/sluicehq/sluice/examples/plugin", dir)
	dup := buildPlugin(t, "./testdata/dupplugin", dir)
	notes := writeFile(t, dir, "notes.so", "not a plugin")
	users := writeFile(t, dir, "users.jsonl", "{\"id\": 1, \"email\": \"ada@example.com\"}\n[]\n{\"id\": 2, \"email\": \"alan@example.com\"}\n")
	pipelineText := `name: plugged
PLUGINS
stages:
  - {name: users, source: file, with: {path: ` + users + `}}
  - {name: hide, transform: redact, with: {fields: [email], mode: mask}}
  - {name: print, sink: logfmt, with: {keys: [id, email]}}
`
	listed := writeFile(t, dir, "listed.yaml", strings.Replace(pipelineText, "PLUGINS", "plugins: [./plugin.so]", 1))
	bare := writeFile(t, dir, "bare.yaml", strings.Replace(pipelineText, "PLUGINS", "", 1))
	dupYAML := writeFile(t, dir, "dup.yaml", strings.Replace(pipelineText, "PLUGINS", "plugins: [./plugin.so, ./dupplugin.so]", 1))
	wantOut := "id=1 email=***\nid=2 email=***\n"

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // the whole of stdout, when set
		wantIn     string // in stdout
		wantErr    string // in stderr
	}{
		{"list plugin types", []string{"stages", "--plugin", redact}, 0, "", "Replaces chosen fields of each record by a hash or a mask (plugin plugin.so)", ""},
		{"show a plugin type", []string{"stages", "--plugin", redact, "redact"}, 0, "", "from plugin " + redact, ""},
		{"plugin parameters", []string{"stages", "--plugin", redact, "logfmt"}, 0, "", "keys  list of strings  yes", ""},
		{"run with plugins: in the file", []string{"run", "--store-dir", filepath.Join(dir, "s1"), listed}, 0, wantOut, "", "dead letters"},
		{"run with --plugin", []string{"run", "--store-dir", filepath.Join(dir, "s2"), "--plugin", redact, bare}, 0, wantOut, "", ""},
		{"a type without its plugin", []string{"validate", bare}, 2, "", "", `unknown transform type "redact"`},
		{"a name that exists", []string{"validate", dupYAML}, 2, "", "", `plugins[1]: ` + dup + `: registers transform "map", which is already built into this program`},
		{"not a plugin", []string{"stages", "--plugin", notes}, 2, "", "", "plugin " + notes + ": not a Go plugin"},
		{"an executable", []string{"stages", "--plugin", bin}, 2, "", "", "not a Go plugin but a -buildmode=exe build: build it with go build -buildmode=plugin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Dir = dir
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, &stdout, &stderr)
			}
			if tt.wantStdout != "" && stdout.String() != tt.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, tt.wantStdout)
			}
			if !strings.Contains(stdout.String(), tt.wantIn) {
				t.Errorf("stdout:\n%s\nwant it to contain %q", &stdout, tt.wantIn)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr:\n%s\nwant it to contain %q", &stderr, tt.wantErr)
			}
		})
	}
}
