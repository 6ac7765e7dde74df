package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// delayedPipeline reads 2000 records from a file and holds each for
// DELAY before writing it, so that the run lasts at least DELAY: long
// enough for progress to show. It returns the pipeline file and the size
// of the input file.
func delayedPipeline(t *testing.T, dir, delay string) (file string, size int) {
	t.Helper()
	var in strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&in, "{\"n\":%d}\n", i)
	}
	writeFile(t, dir, "in.jsonl", in.String())
	file = writeFile(t, dir, "slow.yaml", `name: slow
stages:
  - {name: read, source: file, with: {path: `+filepath.Join(dir, "in.jsonl")+`}}
  - {name: wait, transform: delay, with: {duration: `+delay+`}}
  - {name: write, sink: file, with: {path: `+filepath.Join(dir, "out.jsonl")+`}}
`)
	return file, in.Len()
}

// progressLine is a "progress" log line as JSON.
type progressLine struct {
	Msg      string
	Pipeline string
	Run      uint64
	Stages   map[string]map[string]any
}

// TestRunProgressLines: off a terminal, run logs a structured progress
// line per pipeline every --progress-interval, with each stage's counts,
// the source's bytes of the file's, and the backlog of the others; the
// summary follows them; --quiet logs none.
func TestRunProgressLines(t *testing.T) {
	dir := inEmptyDir(t)
	file, size := delayedPipeline(t, dir, "1s")
	store := filepath.Join(dir, "store")

	code, _, stderr := sluice(t, "run", "--store-dir", store, "--log-format", "json", "--progress-interval", "50ms", file)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var progress []progressLine
	summaryAt := strings.Index(stderr, "pipeline slow run 1 finished")
	lastProgress := -1
	for line := range strings.Lines(stderr) {
		var p progressLine
		if json.Unmarshal([]byte(line), &p) != nil || p.Msg != "progress" {
			continue
		}
		progress = append(progress, p)
		lastProgress = strings.Index(stderr, line)
	}
	if len(progress) < 2 {
		t.Fatalf("%d progress lines in a run of more than a second every 50ms, want several:\n%s", len(progress), stderr)
	}
	if summaryAt < 0 || lastProgress > summaryAt {
		t.Errorf("summary missing or before the last progress line:\n%s", stderr)
	}
	var sawRead, sawPending bool
	for _, p := range progress {
		if p.Pipeline != "slow" || p.Run != 1 || len(p.Stages) != 3 {
			t.Fatalf("progress line %+v, want pipeline slow, run 1, 3 stages", p)
		}
		for _, stage := range []string{"read", "wait", "write"} {
			if _, ok := p.Stages[stage]["in"].(float64); !ok {
				t.Errorf("stage %s: no in count in %v", stage, p.Stages[stage])
			}
		}
		read := p.Stages["read"]
		if read["bytes_total"] != float64(size) {
			t.Errorf("read: bytes_total %v, want the file's size %d", read["bytes_total"], size)
		}
		if read["in"].(float64) > 0 && read["bytes_read"].(float64) > 0 {
			sawRead = true
		}
		if _, ok := p.Stages["wait"]["pending"]; ok {
			sawPending = true
		}
	}
	if !sawRead || !sawPending {
		t.Errorf("no progress line with records and bytes read (%v) or the transform's pending (%v):\n%s", sawRead, sawPending, stderr)
	}

	code, _, stderr = sluice(t, "run", "--fresh", "--store-dir", store, "--log-format", "json", "--progress-interval", "50ms", "-q", file)
	if code != ExitOK {
		t.Fatalf("--quiet: exit %d, stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, `"msg":"progress"`) || !strings.Contains(stderr, "pipeline slow run 1 finished") {
		t.Errorf("--quiet: want no progress lines and the summary:\n%s", stderr)
	}
}

// escapes matches the terminal control sequences of the display.
var escapes = regexp.MustCompile(`\r?\x1b\[[0-9]*[AJK]`)

// TestRunProgressOnATerminal: with stderr on a terminal, run draws a
// block with the source's bar and percent, logs go above it in text, the
// block is erased before the summary and not drawn after it.
func TestRunProgressOnATerminal(t *testing.T) {
	dir := inEmptyDir(t)
	file, _ := delayedPipeline(t, dir, "1500ms")
	store := filepath.Join(dir, "store")
	out := onTerminal(t, "run", "--store-dir", store, file)

	if !regexp.MustCompile(`(?m)^slow  run 1  \d+:\d\d$`).MatchString(escapes.ReplaceAllString(out, "")) {
		t.Errorf("no block heading for the pipeline:\n%q", out)
	}
	if !regexp.MustCompile(`(?m)^  read   in +[0-9,]+  out +[0-9,]+ +[-0-9,]+/s  \[[#-]{24}\] +\d+\.\d%`).MatchString(escapes.ReplaceAllString(out, "")) {
		t.Errorf("no bar with percent for the file source:\n%q", out)
	}
	summary := strings.Index(out, "pipeline slow run 1 finished")
	if summary < 0 {
		t.Fatalf("no summary:\n%q", out)
	}
	after := out[summary:]
	if strings.Contains(after, "\x1b[") || strings.Contains(after, "slow  run 1") {
		t.Errorf("the display drew after the summary:\n%q", after)
	}
	if !regexp.MustCompile(`(?m)^ +read +source +file +2000 `).MatchString(after) {
		t.Errorf("summary table not intact:\n%s", after)
	}
	// Every log line is whole, in text, with the block erased around it.
	logs := 0
	for line := range strings.Lines(escapes.ReplaceAllString(out[:summary], "")) {
		if strings.Contains(line, "level=") {
			logs++
			if !strings.HasPrefix(line, "time=") {
				t.Errorf("log line broken: %q", line)
			}
		}
	}
	if logs == 0 {
		t.Errorf("no text log lines on the terminal:\n%q", out)
	}

	out = onTerminal(t, "run", "--fresh", "-q", "--store-dir", store, file)
	if strings.Contains(out, "\x1b[") || strings.Contains(out, "slow  run 1") || !strings.Contains(out, "pipeline slow run 1 finished") {
		t.Errorf("--quiet on a terminal: want the summary and no progress:\n%q", out)
	}
}

// onTerminal runs sluice with args, stderr on a pseudo-terminal of 160
// columns, and returns what the terminal got, its line ends made "\n".
// It fails the test unless the exit code is ExitOK.
func onTerminal(t *testing.T, args ...string) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 160}); err != nil {
		t.Fatal(err)
	}
	screen := make(chan []byte)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, ptmx) // until the terminal is closed (EIO)
		screen <- b.Bytes()
	}()
	var stdout bytes.Buffer
	code := MainContext(context.Background(), args, strings.NewReader(""), &stdout, tty)
	tty.Close()
	raw := string(<-screen)
	if code != ExitOK {
		t.Fatalf("exit %d, terminal:\n%s", code, raw)
	}
	return strings.ReplaceAll(raw, "\r\n", "\n")
}
