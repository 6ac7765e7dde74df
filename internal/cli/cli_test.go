package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// sluice runs Main with args in an empty working directory and returns the
// exit code, stdout and stderr.
func sluice(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// inEmptyDir runs the test in an empty working directory, so that no
// sluice.yaml is read, and returns it.
func inEmptyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// goodPipeline generates 10 records, doubles seq and writes them to
// OUT_PATH.
const goodPipeline = `name: demo
stages:
  - name: gen
    source: generate
    with:
      count: 10
  - name: double
    transform: map
    with:
      expr: '{"n": seq * 2}'
  - name: out
    sink: file
    with:
      path: OUT_PATH
`

// badPipeline has exactly three problems, on lines 1, 2 and 5.
const badPipeline = `name: Bad_Name
colour: red
stages:
  - name: gen
    source: nosuch
  - name: out
    sink: discard
`

func TestValidate(t *testing.T) {
	dir := inEmptyDir(t)
	good := writeFile(t, dir, "good.yaml", goodPipeline)
	bad := writeFile(t, dir, "bad.yaml", badPipeline)

	t.Run("good", func(t *testing.T) {
		code, stdout, stderr := sluice(t, "validate", good)
		if code != ExitOK || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		if want := good + ": ok (3 stages)\n"; stdout != want {
			t.Errorf("stdout %q, want %q", stdout, want)
		}
	})

	t.Run("bad", func(t *testing.T) {
		code, stdout, stderr := sluice(t, "validate", good, bad)
		if code != ExitUsage {
			t.Errorf("exit %d, want %d", code, ExitUsage)
		}
		if want := good + ": ok (3 stages)\n"; stdout != want {
			t.Errorf("stdout %q, want %q", stdout, want)
		}
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("%d lines on stderr, want 3 problems:\n%s", len(lines), stderr)
		}
		for i, line := range []int{1, 2, 5} {
			prefix := regexp.MustCompile(`^` + regexp.QuoteMeta(bad) + `:` + regexp.QuoteMeta(string(rune('0'+line))) + `:\d+: \S`)
			if !prefix.MatchString(lines[i]) {
				t.Errorf("problem %d %q: want %s:%d:COL: message", i+1, lines[i], bad, line)
			}
		}
	})

	t.Run("missing file", func(t *testing.T) {
		code, _, stderr := sluice(t, "validate", filepath.Join(dir, "nope.yaml"))
		if code != ExitUsage || !strings.HasPrefix(stderr, "sluice: ") || !strings.Contains(stderr, "nope.yaml") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	t.Run("no file", func(t *testing.T) {
		code, _, stderr := sluice(t, "validate")
		if code != ExitUsage || stderr != "sluice: validate: want at least one pipeline file\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestGraph(t *testing.T) {
	dir := inEmptyDir(t)
	good := writeFile(t, dir, "good.yaml", goodPipeline)
	bad := writeFile(t, dir, "bad.yaml", badPipeline)
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings
		stderr   string   // substring
		noStdout bool
	}{
		{name: "mermaid by default", args: []string{good}, stdout: []string{"flowchart LR\n", `subgraph f0 ["fused"]`, "gen", "double", "out", "==>"}},
		{name: "dot", args: []string{"--format", "dot", good}, stdout: []string{`digraph "demo" {`, "subgraph cluster_fused0", `"gen" -> "double" [style=bold];`, "}\n"}},
		{name: "unknown format", args: []string{"--format", "svg", good}, code: ExitUsage, stderr: "sluice: unknown graph format \"svg\" (want mermaid or dot)\n", noStdout: true},
		{name: "invalid pipeline", args: []string{bad}, code: ExitUsage, stderr: bad + ":1:", noStdout: true},
		{name: "two files", args: []string{good, good}, code: ExitUsage, stderr: "want one pipeline file", noStdout: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := sluice(t, append([]string{"graph"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout does not contain %q:\n%s", want, stdout)
				}
			}
			if tt.noStdout && stdout != "" {
				t.Errorf("stdout %q, want none", stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
			if n := strings.Count(stderr, "sluice:"); n > 1 {
				t.Errorf("stderr %q says sluice: %d times", stderr, n)
			}
		})
	}
}

func TestStagesList(t *testing.T) {
	inEmptyDir(t)
	code, stdout, stderr := sluice(t, "stages")
	if code != ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, heading := range []string{"sources:\n", "transforms:\n", "sinks:\n"} {
		if !strings.Contains(stdout, heading) {
			t.Errorf("no %q in:\n%s", heading, stdout)
		}
	}
	// Each type is listed under its role with its summary.
	for _, s := range stages.Default.Specs() {
		section := stdout[strings.Index(stdout, s.Role().String()+"s:"):]
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(s.Name) + ` +` + regexp.QuoteMeta(s.Summary) + `$`).MatchString(section) {
			t.Errorf("%s %q with summary %q not listed:\n%s", s.Role(), s.Name, s.Summary, stdout)
		}
	}
}

func TestStagesType(t *testing.T) {
	inEmptyDir(t)
	code, stdout, stderr := sluice(t, "stages", "file")
	if code != ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	specs, err := stages.Default.Lookup("file")
	if err != nil || len(specs) != 2 {
		t.Fatalf("want a source and a sink named file: %v %v", specs, err)
	}
	for _, s := range specs {
		if !strings.Contains(stdout, s.Role().String()+" file: "+s.Summary+"\n") {
			t.Errorf("no heading for %s file in:\n%s", s.Role(), stdout)
		}
	}
	if n := strings.Count(stdout, "\n  name  "); n != 2 {
		t.Errorf("%d parameter tables, want 2:\n%s", n, stdout)
	}
	// The path parameter of both: required, no default, no enum.
	if n := len(regexp.MustCompile(`(?m)^  path +string +yes +- +- +\S`).FindAllString(stdout, -1)); n != 2 {
		t.Errorf("%d rows for path, want 2:\n%s", n, stdout)
	}
	// The sink's mode: a default and an enum.
	if !regexp.MustCompile(`(?m)^  mode +string +no +overwrite +overwrite\|append +\S`).MatchString(stdout) {
		t.Errorf("no row for mode:\n%s", stdout)
	}
}

func TestStagesUnknown(t *testing.T) {
	inEmptyDir(t)
	code, stdout, stderr := sluice(t, "stages", "nosuch")
	if code != ExitUsage || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	if !strings.HasPrefix(stderr, `sluice: unknown stage type "nosuch" (known: `) || !strings.Contains(stderr, "generate") {
		t.Errorf("stderr %q", stderr)
	}
	code, _, stderr = sluice(t, "stages", "fitler")
	if code != ExitUsage || !strings.HasPrefix(stderr, `sluice: unknown stage type "fitler": did you mean "filter"? (known: `) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	inEmptyDir(t)
	want := regexp.MustCompile(`^sluice \S+ \(go1\.\d+\S*, nats-server \d+\.\d+\.\d+\S*\)\n(revision [0-9a-f]+( \(.*\))?\n)?$`)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := sluice(t, args...)
		if code != ExitOK || stderr != "" || !want.MatchString(stdout) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	inEmptyDir(t)
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		stderr string
	}{
		{name: "unknown command", args: []string{"valdate"}, stderr: `sluice: unknown command "valdate" for "sluice"`},
		{name: "unknown flag", args: []string{"validate", "--lenient", "x.yaml"}, stderr: "sluice: unknown flag: --lenient"},
		{name: "no command", args: nil, stderr: "sluice: missing command"},
		{name: "too many types", args: []string{"stages", "a", "b"}, stderr: "sluice: accepts at most 1 arg(s)"},
		{name: "bad log level flag", args: []string{"--log-level", "loud", "run", "x.yaml"}, stderr: `log_level must be one of debug, info, warn, error (got "loud")`},
		{name: "bad log level env", args: []string{"run", "x.yaml"}, env: map[string]string{"SLUICE_LOG_LEVEL": "loud"}, stderr: `(got "loud")`},
		{name: "missing config file", args: []string{"--config", "nope.yaml", "run", "x.yaml"}, stderr: "nope.yaml"},
		{name: "listen with nats", args: []string{"run", "--listen", "127.0.0.1:0", "x.yaml"}, env: map[string]string{"SLUICE_NATS_URL": "nats://127.0.0.1:4222"}, stderr: "--listen"},
		{name: "conflicting auth", args: []string{"run", "--nats", "nats://127.0.0.1:4222", "x.yaml"}, env: map[string]string{"SLUICE_NATS_TOKEN": "t", "SLUICE_NATS_USER": "u"}, stderr: "nats.token, nats.user conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, stderr := sluice(t, tt.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.stderr)
			}
		})
	}
}

func TestConfigFile(t *testing.T) {
	dir := inEmptyDir(t)
	writeFile(t, dir, "sluice.yaml", "log_level: loud\n")
	code, _, stderr := sluice(t, "run", "x.yaml")
	if code != ExitUsage || !strings.Contains(stderr, `(got "loud")`) {
		t.Errorf("./sluice.yaml not read: exit %d, stderr %q", code, stderr)
	}
	// The flag wins: the settings pass and loading the pipeline fails.
	code, _, stderr = sluice(t, "--log-level", "info", "run", "x.yaml")
	if code != ExitUsage || !strings.Contains(stderr, "x.yaml") || strings.Contains(stderr, "loud") {
		t.Errorf("the flag does not win over the config file: exit %d, stderr %q", code, stderr)
	}
	// Commands that need no settings work with broken ones.
	for _, args := range [][]string{{"version"}, {"help", "run"}, {"stages"}} {
		if code, _, stderr := sluice(t, args...); code != ExitOK {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// demoPipeline writes goodPipeline into dir with its output in dir and
// returns the pipeline file and the output file.
func demoPipeline(t *testing.T, dir string) (file, out string) {
	t.Helper()
	out = filepath.Join(dir, "out", "doubled.jsonl")
	return writeFile(t, dir, "demo.yaml", strings.ReplaceAll(goodPipeline, "OUT_PATH", out)), out
}

func checkDoubled(t *testing.T, out string) {
	t.Helper()
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d records, want 10:\n%s", len(lines), data)
	}
	seen := make(map[string]bool)
	for _, l := range lines {
		seen[l] = true
	}
	for _, want := range []string{`{"n":0}`, `{"n":10}`, `{"n":18}`} {
		if !seen[want] {
			t.Errorf("no record %s in:\n%s", want, data)
		}
	}
}

func TestRunEmbedded(t *testing.T) {
	dir := inEmptyDir(t)
	file, out := demoPipeline(t, dir)
	store := filepath.Join(dir, "store")

	code, stdout, stderr := sluice(t, "run", "--store-dir", store, "--log-format", "text", file)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing: no stdout sink", stdout)
	}
	checkDoubled(t, out)
	if !strings.Contains(stderr, "pipeline demo run 1 finished") || !regexp.MustCompile(`(?m)^ +gen +source +generate +10 `).MatchString(stderr) {
		t.Errorf("no summary on stderr:\n%s", stderr)
	}
	if _, err := os.Stat(filepath.Join(store, "jetstream")); err != nil {
		t.Errorf("store not in --store-dir: %v", err)
	}

	// --fresh starts over: the run number is 1 again.
	code, _, stderr = sluice(t, "run", "--fresh", "--store-dir", store, file)
	if code != ExitOK || !strings.Contains(stderr, "pipeline demo run 1 finished") {
		t.Fatalf("with --fresh: exit %d, stderr:\n%s", code, stderr)
	}
	checkDoubled(t, out)
}

func TestRunStdout(t *testing.T) {
	dir := inEmptyDir(t)
	file := writeFile(t, dir, "p.yaml", `name: to-stdout
stages:
  - name: gen
    source: generate
    with:
      count: 3
  - name: print
    sink: stdout
`)
	code, stdout, stderr := sluice(t, "run", "--store-dir", filepath.Join(dir, "store"), file)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if n := strings.Count(stdout, "\n"); n != 3 || !strings.Contains(stdout, `"seq":2`) {
		t.Errorf("stdout %q, want 3 records", stdout)
	}
	if strings.Contains(stdout, "pipeline to-stdout") {
		t.Error("the summary went to stdout")
	}
}

func TestRunRemote(t *testing.T) {
	dir := inEmptyDir(t)
	file, out := demoPipeline(t, dir)
	srv := natstest.Server(t)
	code, _, stderr := sluice(t, "run", "--nats", srv.ClientURL(), file)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	checkDoubled(t, out)
	if _, err := os.Stat(filepath.Join(dir, ".sluice")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a store was made with --nats: %v", err)
	}
}

func TestRunFailures(t *testing.T) {
	dir := inEmptyDir(t)
	good, _ := demoPipeline(t, dir)
	bad := writeFile(t, dir, "bad.yaml", badPipeline)
	store := filepath.Join(dir, "store")

	t.Run("invalid pipeline", func(t *testing.T) {
		code, _, stderr := sluice(t, "run", "--store-dir", store, good, bad)
		if code != ExitUsage || strings.Count(stderr, bad+":") != 3 {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
		if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the server started for an invalid pipeline: %v", err)
		}
	})

	t.Run("same pipeline twice", func(t *testing.T) {
		code, _, stderr := sluice(t, "run", "--store-dir", store, good, good)
		if code != ExitUsage || !strings.Contains(stderr, `both name pipeline "demo"`) {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})

	t.Run("fresh refuses a directory that is not a store", func(t *testing.T) {
		code, _, stderr := sluice(t, "run", "--fresh", "--store-dir", dir, good)
		if code != ExitUsage || !strings.Contains(stderr, "refusing to remove") {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
		if _, err := os.Stat(good); err != nil {
			t.Errorf("--fresh removed files: %v", err)
		}
	})

	t.Run("no server", func(t *testing.T) {
		// run --nats waits for its server, saying so at each attempt,
		// until it is stopped (see TestWaitsForTheServer for one that
		// comes up).
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stderr := newLockedBuffer()
		done := make(chan int, 1)
		go func() {
			done <- MainContext(ctx, []string{"run", "--nats", "nats://127.0.0.1:1", good}, strings.NewReader(""), io.Discard, stderr)
		}()
		natstest.WaitFor(t, time.Minute, "run to say it waits for NATS", func() bool {
			return strings.Contains(stderr.String(), "cannot reach NATS")
		})
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("stopped while waiting for NATS: exit %d, stderr:\n%s", code, stderr)
		}
	})

	t.Run("sink fails", func(t *testing.T) {
		blocker := writeFile(t, dir, "blocker", "a file where the sink wants a directory")
		p := writeFile(t, dir, "unwritable.yaml", strings.ReplaceAll(goodPipeline, "OUT_PATH", filepath.Join(blocker, "out.jsonl")))
		code, _, stderr := sluice(t, "run", "--store-dir", store, p)
		if code != ExitFailure || !strings.Contains(stderr, "sluice: ") {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})
}

// TestBinary builds the sluice command and checks its exit status as a
// process.
func TestBinary(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()

	t.Run("validate", func(t *testing.T) {
		bad := writeFile(t, dir, "bad.yaml", badPipeline)
		cmd := exec.Command(bin, "validate", bad)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != ExitUsage {
			t.Fatalf("sluice validate: %v, want exit status %d", err, ExitUsage)
		}
		if n := strings.Count(stderr.String(), bad+":"); n != 3 {
			t.Errorf("%d problems, want 3:\n%s", n, stderr.String())
		}
	})

	t.Run("interrupt", func(t *testing.T) {
		out := filepath.Join(dir, "endless.jsonl")
		p := writeFile(t, dir, "endless.yaml", `name: endless
stages:
  - name: gen
    source: generate
    with:
      rate: 200
  - name: out
    sink: file
    with:
      path: `+out+`
`)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // kills a hung process
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "run", "--store-dir", filepath.Join(dir, "store"), p)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		natstest.WaitFor(t, 20*time.Second, "records in the output", func() bool {
			info, err := os.Stat(out)
			return err == nil && info.Size() > 0
		})
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("sluice run stopped by SIGINT: %v, want exit status 0; stderr:\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "pipeline endless run 1 interrupted") {
			t.Errorf("no interrupted summary:\n%s", stderr.String())
		}
	})
}

// TestRunMalformedJSONLines runs a JSON-lines file with malformed lines to
// the end: good records reach the sinks, each malformed line is in the
// dead-letter stream with its reason, and the summary counts both.
func TestRunMalformedJSONLines(t *testing.T) {
	dir := inEmptyDir(t)
	writeFile(t, dir, "in.jsonl", `{"id": 1, "v": "a"}
{"id": 2, "v": "b"
not json at all
{"id": 4, "v": "d"}
[1, 2]
{"id": 6, "v": "f"}
`)
	// Straight into a file sink, and through a map into another.
	file := writeFile(t, dir, "p.yaml", `name: malformed
stages:
  - name: read
    source: file
    with: {path: in.jsonl}
  - name: raw
    sink: file
    with: {path: out/raw.jsonl}
  - name: tag
    from: read
    transform: map
    with: {expr: '{"id": id, "tagged": true}'}
  - name: tagged
    sink: file
    with: {path: out/tagged.jsonl}
`)
	store := filepath.Join(dir, "store")
	code, _, stderr := sluice(t, "run", "--store-dir", store, file)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := read("raw.jsonl"), "{\"id\": 1, \"v\": \"a\"}\n{\"id\": 4, \"v\": \"d\"}\n[1, 2]\n{\"id\": 6, \"v\": \"f\"}\n"; got != want {
		t.Errorf("raw.jsonl =\n%s\nwant\n%s", got, want)
	}
	if got, want := read("tagged.jsonl"), "{\"id\":1,\"tagged\":true}\n{\"id\":4,\"tagged\":true}\n{\"id\":6,\"tagged\":true}\n"; got != want {
		t.Errorf("tagged.jsonl =\n%s\nwant\n%s", got, want)
	}
	for _, row := range []string{
		`(?m)^ +read +source +file +6 +6 +0 +0 +0 `,
		`(?m)^ +raw +sink +file +6 +4 +0 +0 +2 `,
		`(?m)^ +tag +transform +map +6 +3 +0 +0 +3 `,
	} {
		if !regexp.MustCompile(row).MatchString(stderr) {
			t.Errorf("summary has no row matching %s:\n%s", row, stderr)
		}
	}

	// The dead letters, read from the store the run left.
	nc := natstest.OpenStore(t, store)
	var got []string
	for _, m := range natstest.StreamMessages(t, nc, schema.DLQStreamName("malformed")) {
		got = append(got, m.Header.Get(stages.HeaderStage)+" | "+string(m.Data)+" | "+m.Header.Get(stages.HeaderError))
	}
	slices.Sort(got)
	want := []string{
		`raw | not json at all | record is not valid JSON`,
		`raw | {"id": 2, "v": "b" | record is not valid JSON`,
		`tag | [1, 2] | record is a JSON array, not an object`,
		`tag | not json at all | invalid JSON: invalid character 'o' in literal null (expecting 'u') (at byte 2)`,
		`tag | {"id": 2, "v": "b" | invalid JSON: unexpected end of JSON input (at byte 18)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("dead letters:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestShutdownTimeoutFlag: run and worker both have --shutdown-timeout;
// each command's own flag is the one its settings read.
func TestShutdownTimeoutFlag(t *testing.T) {
	for _, cmd := range []string{"run", "worker"} {
		t.Run(cmd, func(t *testing.T) {
			t.Chdir(t.TempDir())
			args := []string{cmd, "--shutdown-timeout", "-1s"}
			if cmd == "run" {
				args = append(args, "p.yaml")
			}
			code, _, stderr := sluice(t, args...)
			if code != ExitUsage || !strings.Contains(stderr, "shutdown_timeout must be > 0 (got -1s)") {
				t.Errorf("sluice %s: exit %d, stderr %q; want exit %d naming shutdown_timeout", strings.Join(args, " "), code, stderr, ExitUsage)
			}
		})
	}
}
