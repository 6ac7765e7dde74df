package file

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/filelock"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestFileSinkWorkerPath(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host = regexp.MustCompile(`[^A-Za-z0-9._-]`).ReplaceAllString(host, "_")
	tests := []struct {
		name     string
		path     string // relative to a temp dir
		workerID string
		want     string
	}{
		{"no placeholder", "out.jsonl", "w1", "out.jsonl"},
		{"id", "out-{worker}.jsonl", "w1", "out-w1.jsonl"},
		{"every placeholder", "{worker}/out-{worker}.jsonl", "w1", "w1/out-w1.jsonl"},
		{"slash", "out-{worker}.jsonl", "rack/a b:7", "out-rack_a_b_7.jsonl"},
		{"dots alone", "{worker}/out.jsonl", "..", "__/out.jsonl"},
		{"kept characters", "out-{worker}.jsonl", "Node_1.eu-west", "out-Node_1.eu-west.jsonl"},
		{"host name by default", "out-{worker}.jsonl", "", "out-" + host + ".jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sk := stagetest.NewSink(t, "file", map[string]any{"path": filepath.Join(dir, tt.path)}, stages.Info{WorkerID: tt.workerID})
			if err := sk.Write(context.Background(), stagetest.Msgs(`1`)); err != nil {
				t.Fatal(err)
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := stagetest.ReadString(t, filepath.Join(dir, tt.want)); got != "1\n" {
				t.Fatalf("%s holds %q", tt.want, got)
			}
		})
	}
}

func TestFileSinkOneFilePerWorker(t *testing.T) {
	dir := t.TempDir()
	raw := map[string]any{"path": filepath.Join(dir, "out-{worker}.jsonl")}
	a := stagetest.NewSink(t, "file", raw, stages.Info{WorkerID: "a"})
	b := stagetest.NewSink(t, "file", raw, stages.Info{WorkerID: "b"})
	for _, w := range []struct {
		sk      stages.Sink
		payload string
	}{{a, `"a"`}, {b, `"b"`}, {a, `"a2"`}} {
		if err := w.sk.Write(context.Background(), stagetest.Msgs(w.payload)); err != nil {
			t.Fatal(err)
		}
	}
	for _, sk := range []stages.Sink{a, b} {
		if err := sk.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := stagetest.ReadString(t, filepath.Join(dir, "out-a.jsonl")); got != "\"a\"\n\"a2\"\n" {
		t.Fatalf("out-a.jsonl holds %q", got)
	}
	if got := stagetest.ReadString(t, filepath.Join(dir, "out-b.jsonl")); got != "\"b\"\n" {
		t.Fatalf("out-b.jsonl holds %q", got)
	}
}

func TestFileSinkSecondWriterIsRefused(t *testing.T) {
	if !filelock.Supported {
		t.Skip("no file lock on this platform")
	}
	tests := []struct {
		name string
		raw  map[string]any
		info stages.Info
		hint string // in the error
	}{
		{"overwrite", map[string]any{"path": "out.jsonl"}, stages.Info{}, "put {worker} in path"},
		{"append", map[string]any{"path": "out.jsonl", "mode": "append"}, stages.Info{}, "put {worker} in path"},
		{"no dedupe", map[string]any{"path": "out.jsonl", "dedupe": false}, stages.Info{}, "put {worker} in path"},
		{"resumed", map[string]any{"path": "out.jsonl"}, stages.Info{Run: 1, Resumed: true}, "put {worker} in path"},
		{"same worker id", map[string]any{"path": "out-{worker}.jsonl"}, stages.Info{WorkerID: "w1"}, "--id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			raw := map[string]any{}
			for k, v := range tt.raw {
				raw[k] = v
			}
			raw["path"] = filepath.Join(dir, tt.raw["path"].(string))
			path := filepath.Join(dir, "out.jsonl")
			if tt.info.WorkerID != "" {
				path = filepath.Join(dir, "out-"+tt.info.WorkerID+".jsonl")
			}
			first := stagetest.NewSink(t, "file", raw, tt.info)
			if err := first.Write(context.Background(), stagetest.Msgs(`1`, `2`)); err != nil {
				t.Fatal(err)
			}
			journal, _ := os.ReadFile(journalPath(path)) // none without dedupe

			s := stagetest.Lookup(t, stages.RoleSink, "file")
			second, err := s.NewSink(stagetest.Parse(t, s, raw), tt.info)
			if !errors.Is(err, stages.ErrBusy) {
				if second != nil {
					second.Close(context.Background())
				}
				t.Fatalf("got %v, want an error matching ErrBusy", err)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "interleave") || !strings.Contains(msg, tt.hint) {
				t.Fatalf("error %q should name %s, say why and hint %q", msg, path, tt.hint)
			}
			// The refused sink touched neither the file nor its journal.
			if got := stagetest.ReadString(t, path); got != "1\n2\n" {
				t.Fatalf("the file holds %q after the refused open", got)
			}
			if got, _ := os.ReadFile(journalPath(path)); string(got) != string(journal) {
				t.Fatal("the journal changed after the refused open")
			}
			// The first sink writes on, and once it is closed the file is
			// free.
			if err := first.Write(context.Background(), stagetest.Msgs(`3`)); err != nil {
				t.Fatal(err)
			}
			if err := first.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := stagetest.ReadString(t, path); got != "1\n2\n3\n" {
				t.Fatalf("the file holds %q", got)
			}
			next := stagetest.NewSink(t, "file", raw, tt.info)
			if err := next.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// lockHelperEnv names the file that TestFileSinkLockHelperProcess opens a
// sink on when the test binary runs it as a child process.
const lockHelperEnv = "SLUICE_TEST_FILE_SINK_LOCK"

// TestFileSinkLockHelperProcess is not a test: run as a child process by
// TestFileSinkLockedByAnotherProcess, it opens a file sink, prints "ready"
// and holds the sink open until its stdin closes or it is killed.
func TestFileSinkLockHelperProcess(t *testing.T) {
	path := os.Getenv(lockHelperEnv)
	if path == "" {
		t.Skip("run as a child process by TestFileSinkLockedByAnotherProcess")
	}
	sk := stagetest.NewSink(t, "file", map[string]any{"path": path}, stages.Info{})
	if err := sk.Write(context.Background(), stagetest.Msgs(`"child"`)); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func TestFileSinkLockedByAnotherProcess(t *testing.T) {
	if !filelock.Supported {
		t.Skip("no file lock on this platform")
	}
	path := filepath.Join(t.TempDir(), "out.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileSinkLockHelperProcess$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	t.Cleanup(func() {
		if !exited {
			stdin.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	// Wait until the child holds the file.
	var seen []string
	for sc := bufio.NewScanner(stdout); ; {
		if !sc.Scan() {
			t.Fatalf("the child ended before it was ready: %q %s", seen, stderr.String())
		}
		if sc.Text() == "ready" {
			break
		}
		seen = append(seen, sc.Text())
	}

	s := stagetest.Lookup(t, stages.RoleSink, "file")
	raw := stagetest.Parse(t, s, map[string]any{"path": path, "mode": "append"})
	if sk, err := s.NewSink(raw, stages.Info{}); !errors.Is(err, stages.ErrBusy) || !strings.Contains(err.Error(), path) {
		if sk != nil {
			sk.Close(context.Background())
		}
		t.Fatalf("got %v, want an error matching ErrBusy naming %s", err, path)
	}

	// Once the child is dead, the kernel has dropped its lock.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	exited = true
	sk := stagetest.NewSink(t, "file", map[string]any{"path": path, "mode": "append"}, stages.Info{})
	if err := sk.Write(context.Background(), stagetest.Msgs(`"parent"`)); err != nil {
		t.Fatal(err)
	}
	if err := sk.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := stagetest.ReadString(t, path); got != "\"child\"\n\"parent\"\n" {
		t.Fatalf("the file holds %q", got)
	}
}
