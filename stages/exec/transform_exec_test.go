package exec

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// The exec tests run the test binary itself as the command, in the manner
// of os/exec's own tests: TestExecHelperProcess does nothing in a normal
// run, and plays the command when SLUICE_EXEC_HELPER says how.
const execHelperEnv = "SLUICE_EXEC_HELPER"

// TestExecHelperProcess is the command of the exec tests. Modes:
//   - serve: answers each line as its "do" field says (see serveLine);
//   - exit: writes a line to stderr and exits with status 2 at once;
//   - ignore-eof: serves, and at the end of stdin keeps running.
//
// While the file SLUICE_EXEC_BROKEN names exists, serve fails on every
// line as failOnAny says.
func TestExecHelperProcess(t *testing.T) {
	mode := os.Getenv(execHelperEnv)
	if mode == "" {
		return
	}
	switch mode {
	case "exit":
		fmt.Fprintln(os.Stderr, "cannot start: no config")
		os.Exit(2)
	case "serve", "ignore-eof":
		r := bufio.NewReader(os.Stdin)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			if broken, err := os.ReadFile(os.Getenv("SLUICE_EXEC_BROKEN")); err == nil {
				failOnAny(string(broken))
			}
			serveLine(strings.TrimSuffix(line, "\n"))
		}
		if mode == "ignore-eof" {
			select {} // until killed
		}
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "unknown mode", mode)
	os.Exit(1)
}

// failOnAny fails on a record whatever it is, as how says: "sleep"
// gives no answer, anything else exits.
func failOnAny(how string) {
	fmt.Fprintln(os.Stderr, "out of order")
	if how == "sleep" {
		time.Sleep(time.Hour)
	}
	os.Exit(4)
}

// serveLine answers one line on stdout (unbuffered, so each answer is
// flushed) as the line's "do" field says; a line that is not JSON is
// answered with {"text": line}.
func serveLine(line string) {
	var rec struct {
		Do, Msg, Name string
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		b, _ := json.Marshal(map[string]string{"text": line})
		fmt.Println(string(b))
		return
	}
	switch rec.Do {
	case "upper":
		fmt.Println(strings.ToUpper(line))
	case "array":
		fmt.Printf("[%s, %s]\n", line, line)
	case "empty-array":
		fmt.Println("[]")
	case "bad-array":
		fmt.Printf("[%s, 1]\n", line)
	case "null":
		fmt.Println("null")
	case "garbage":
		fmt.Println("this is not json")
	case "scalar":
		fmt.Println("42")
	case "reject":
		fmt.Println(`"no good: \"x\""`)
	case "stderr":
		fmt.Fprintln(os.Stderr, rec.Msg)
		fmt.Println(line)
	case "env":
		fmt.Printf("{\"env\":%q}\n", os.Getenv(rec.Name))
	case "pwd":
		wd, _ := os.Getwd()
		fmt.Printf("{\"dir\":%q}\n", filepath.Base(wd))
	case "die-once":
		// Dies the first time, answers afterwards: the marker file
		// remembers across processes.
		mark := os.Getenv("SLUICE_EXEC_MARK")
		if _, err := os.Stat(mark); err != nil {
			os.WriteFile(mark, nil, 0o644)
			fmt.Fprintln(os.Stderr, "dying on purpose")
			os.Exit(3)
		}
		fmt.Println(line)
	case "die":
		fmt.Fprintln(os.Stderr, "dying on this record")
		os.Exit(3)
	case "close-stdout":
		os.Stdout.Close()
	case "sleep":
		time.Sleep(time.Hour)
	default:
		fmt.Println(line)
	}
}

// execParams returns the parameters of an exec transform running the
// helper in mode, with more from extra.
func execParams(t *testing.T, mode string, extra map[string]any) map[string]any {
	raw := map[string]any{
		"command": os.Args[0],
		"args":    []any{"-test.run=^TestExecHelperProcess$"},
		// A binary built with -race sleeps a second at exit without
		// atexit_sleep_ms=0.
		"env":                 map[string]any{execHelperEnv: mode, "SLUICE_EXEC_MARK": filepath.Join(t.TempDir(), "mark"), "GORACE": "atexit_sleep_ms=0"},
		"restart_backoff_min": "1ms",
		"restart_backoff_max": "10ms",
	}
	for k, v := range extra {
		if k == "env" {
			for name, val := range v.(map[string]any) {
				raw["env"].(map[string]any)[name] = val
			}
			continue
		}
		raw[k] = v
	}
	return raw
}

// newExec builds an exec transform with info, closed at the end of the
// test.
func newExec(t *testing.T, raw map[string]any, info stages.Info) *execTransform {
	t.Helper()
	s := stagetest.Lookup(t, stages.RoleTransform, "exec")
	tr, err := s.NewTransform(stagetest.Parse(t, s, raw), info)
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr.(*execTransform)
}

func TestExec(t *testing.T) {
	wd := filepath.Join(t.TempDir(), "exec-wd")
	if err := os.Mkdir(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	hdr := stages.Header{"X-Trace": {"t1"}, stages.HeaderKey: {"k"}}
	big := `{"do":"echo","s":"` + strings.Repeat("x", 1<<20) + `"}` // more than a pipe holds
	tests := []struct {
		name    string
		extra   map[string]any // more parameters
		in      string
		want    []string
		wantErr string // part of a permanent error
	}{
		{name: "object", in: `{"do":"echo","n":1}`, want: []string{`{"do":"echo","n":1}`}},
		{name: "bytes kept", in: `{"n": 1,  "do": "echo"}`, want: []string{`{"n": 1,  "do": "echo"}`}},
		{name: "upper", in: `{"do":"upper","s":"abc"}`, want: []string{`{"DO":"UPPER","S":"ABC"}`}},
		{name: "array", in: `{"do":"array","n":2}`, want: []string{`{"do":"array","n":2}`, `{"do":"array","n":2}`}},
		{name: "empty array", in: `{"do":"empty-array"}`, want: nil},
		{name: "null", in: `{"do":"null"}`, want: nil},
		{name: "lines compacted", in: "{\"do\": \"echo\",\r\n  \"s\": \"a\\nb\"\n}", want: []string{`{"do":"echo","s":"a\nb"}`}},
		{name: "big", in: big, want: []string{big}},
		{name: "text line", in: `hello there`, want: []string{`{"text":"hello there"}`}},
		{name: "env", extra: map[string]any{"env": map[string]any{"EXEC_TEST_VAR": "from the stage"}},
			in: `{"do":"env","name":"EXEC_TEST_VAR"}`, want: []string{`{"env":"from the stage"}`}},
		{name: "dir", extra: map[string]any{"dir": wd}, in: `{"do":"pwd"}`, want: []string{`{"dir":"exec-wd"}`}},
		{name: "text over lines", in: "two\nlines", wantErr: "the record spans several lines and is not JSON"},
		{name: "garbage", in: `{"do":"garbage"}`, wantErr: `answered "this is not json": not JSON (invalid character 'h' in literal true (expecting 'r'))`},
		{name: "scalar", in: `{"do":"scalar"}`, wantErr: `answered "42": a JSON number, not an object, an array of objects or null`},
		{name: "rejected", in: `{"do":"reject"}`, wantErr: `rejected the record: "no good: \"x\""`},
		{name: "array of scalars", in: `{"do":"bad-array"}`, wantErr: `answered "[{\"do\":\"bad-array\"}, 1]": element 1 is a JSON number, not an object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newExec(t, execParams(t, "serve", tt.extra), stages.Info{})
			in := stages.NewMessage([]byte(tt.in))
			in.Header = hdr
			prior := stages.NewMessage(nil)
			out, err := tr.Process(context.Background(), in, []*stages.Message{prior})
			if len(out) == 0 || out[0] != prior {
				t.Fatal("Process must append to out")
			}
			if tt.wantErr != "" {
				if !stages.IsPermanent(err) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want a permanent error with %q", err, tt.wantErr)
				}
				if len(out) != 1 {
					t.Fatalf("an error must leave out as it was, got %d messages", len(out))
				}
				// The process is still in step: the next record works.
				if got, err := stagetest.Process(t, tr, `{"do":"echo"}`); err != nil || len(got) != 1 {
					t.Fatalf("after the error: %q, %v", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range out[1:] {
				got = append(got, stagetest.PayloadOf(t, m))
				if !reflect.DeepEqual(m.Header, hdr) {
					t.Errorf("output headers %v, want %v", m.Header, hdr)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestExecFailures covers a command that fails on the record in flight:
// the record gets a retryable error saying how, the command is started
// again and the record, retried, goes through.
func TestExecFailures(t *testing.T) {
	tests := []struct {
		name    string
		extra   map[string]any
		in      string
		wantErr []string // parts of the retryable error
	}{
		{name: "dies", in: `{"do":"die-once"}`,
			wantErr: []string{"exited before answering", "(exit status 3)", `it last wrote to stderr: "dying on purpose"`}},
		{name: "closes stdout", extra: map[string]any{"close_timeout": "100ms"}, in: `{"do":"close-stdout"}`,
			wantErr: []string{"closed its stdout before answering"}},
		// Long enough for a start of the helper on a busy machine:
		// the first record after a start waits for that too.
		{name: "timeout", extra: map[string]any{"timeout": "2s"}, in: `{"do":"sleep"}`,
			wantErr: []string{"gave no answer within 2s", "(signal: killed)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newExec(t, execParams(t, "serve", tt.extra), stages.Info{})
			if got, err := stagetest.Process(t, tr, `{"n":1}`); err != nil || len(got) != 1 {
				t.Fatalf("first record: %q, %v", got, err)
			}
			first := tr.child
			_, err := stagetest.Process(t, tr, tt.in)
			if err == nil || stages.IsPermanent(err) {
				t.Fatalf("got %v, want a retryable error", err)
			}
			for _, part := range tt.wantErr {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			if first.cmd.ProcessState == nil {
				t.Error("the failed process was not waited for")
			}
			if tt.name == "dies" {
				// The retry reaches a new process, which answers.
				if got, err := stagetest.Process(t, tr, tt.in); err != nil || !reflect.DeepEqual(got, []string{tt.in}) {
					t.Fatalf("retry: %q, %v", got, err)
				}
			}
			if got, err := stagetest.Process(t, tr, `{"n":2}`); err != nil || !reflect.DeepEqual(got, []string{`{"n":2}`}) {
				t.Fatalf("after the restart: %q, %v", got, err)
			}
			if tr.child == first {
				t.Fatal("the command was not restarted")
			}
		})
	}
}

// TestExecExitsAtStart runs a command that exits at once, every time: each
// record gets an error with what the command wrote to stderr, and the
// restarts wait for the backoff rather than spin.
func TestExecExitsAtStart(t *testing.T) {
	logs := &stagetest.LockedBuffer{}
	tr := newExec(t, execParams(t, "exit", map[string]any{"restart_backoff_min": "1h", "restart_backoff_max": "2h"}),
		stages.Info{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	_, err := stagetest.Process(t, tr, `{"n":1}`)
	if err == nil || stages.IsPermanent(err) || !strings.Contains(err.Error(), `(exit status 2); it last wrote to stderr: "cannot start: no config"`) {
		t.Fatalf("got %v, want a retryable error quoting stderr", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = tr.Process(ctx, stages.NewMessage([]byte(`{"n":2}`)), nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "to start command") {
		t.Fatalf("got %v, want the wait for the restart to end with the context", err)
	}
	if n := strings.Count(logs.String(), "command started"); n != 1 {
		t.Fatalf("started %d times, want 1:\n%s", n, logs)
	}
}

func TestExecBackoff(t *testing.T) {
	tr := &execTransform{restart: retry.Backoff{Min: 100 * time.Millisecond, Max: time.Second}}
	var got []time.Duration
	for range 6 {
		tr.failed(time.Now())
		got = append(got, tr.backoff())
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
	// A process that ran for a while before it failed starts the delays
	// over.
	tr.failed(time.Now().Add(-execHealthy))
	if tr.failures != 1 || tr.backoff() != 100*time.Millisecond {
		t.Fatalf("after a healthy run: %d failures, delay %v", tr.failures, tr.backoff())
	}
}

// TestExecBackoffResetsAfterAnAnswer: a command that dies on a few
// records and answers the others waits the shortest restart delay after
// each death, not one that doubles across the records between them.
func TestExecBackoffResetsAfterAnAnswer(t *testing.T) {
	tr := newExec(t, execParams(t, "serve", map[string]any{"restart_backoff_min": "1ms", "restart_backoff_max": "1h"}), stages.Info{})
	for i, do := range []string{"die", "ok", "die", "ok", "die"} {
		_, err := tr.Process(context.Background(), stages.NewMessage([]byte(`{"do":"`+do+`"}`)), nil)
		if (do == "die") != (err != nil) {
			t.Fatalf("record %d (%s): %v", i, do, err)
		}
	}
	if tr.failures != 1 || tr.backoff() != time.Millisecond {
		t.Fatalf("after the third death with answers between: %d failures in a row, restart delay %s; want 1 and 1ms", tr.failures, tr.backoff())
	}
}

func TestExecStderrLogged(t *testing.T) {
	logs := &stagetest.LockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil)).With("stage", "enrich")
	tr := newExec(t, execParams(t, "serve", nil), stages.Info{Logger: log, Worker: 3})
	if _, err := stagetest.Process(t, tr, `{"do":"stderr","msg":"hello from the command"}`); err != nil {
		t.Fatal(err)
	}
	// Close waits for the command's stderr to be read to its end.
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, line := range strings.Split(logs.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["line"] == "hello from the command" {
			found = true
			if e["level"] != "INFO" || e["msg"] != "command stderr" || e["stage"] != "enrich" || e["worker"] != 3.0 {
				t.Errorf("log entry %s", line)
			}
		}
	}
	if !found {
		t.Fatalf("stderr line not logged:\n%s", logs)
	}
}

func TestExecClose(t *testing.T) {
	tests := []struct {
		mode       string
		grace      string
		wantKilled bool
	}{
		{mode: "serve", grace: "1m"},
		{mode: "ignore-eof", grace: "100ms", wantKilled: true},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			before := runtime.NumGoroutine()
			logs := &stagetest.LockedBuffer{}
			tr := newExec(t, execParams(t, tt.mode, map[string]any{"close_timeout": tt.grace}), stages.Info{Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if _, err := stagetest.Process(t, tr, `{"n":1}`); err != nil {
				t.Fatal(err)
			}
			c := tr.child
			if err := tr.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Reaped, so no zombie is left.
			ps := c.cmd.ProcessState
			if ps == nil {
				t.Fatal("the process was not waited for")
			}
			if killed := strings.Contains(logs.String(), "killed it"); killed != tt.wantKilled || ps.Success() == tt.wantKilled {
				t.Fatalf("process ended with %v, killed logged %v; want killed %v", ps, killed, tt.wantKilled)
			}
			if _, err := stagetest.Process(t, tr, `{"n":2}`); !errors.Is(err, errExecClosed) {
				t.Fatalf("Process after Close: %v", err)
			}
			if err := tr.Close(context.Background()); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			waitGoroutines(t, before)
		})
	}
}

func TestExecStartErrors(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{name: "not found", extra: map[string]any{"command": "sluice-no-such-command"}, want: `exec: command "sluice-no-such-command": exec: "sluice-no-such-command": executable file not found in $PATH`},
		{name: "no dir", extra: map[string]any{"dir": "/nonexistent/sluice"}, want: `exec: dir "/nonexistent/sluice": stat /nonexistent/sluice: no such file or directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stagetest.Lookup(t, stages.RoleTransform, "exec")
			tr, err := s.NewTransform(stagetest.Parse(t, s, execParams(t, "serve", tt.extra)), stages.Info{})
			if err == nil {
				tr.Close(context.Background())
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestExecParams(t *testing.T) {
	tests := []struct {
		raw   map[string]any
		param string
	}{
		{map[string]any{}, "command"},
		{map[string]any{"command": " "}, "command"},
		{map[string]any{"command": "cat", "timeout": "0s"}, "timeout"},
		{map[string]any{"command": "cat", "restart_backoff_min": "0s"}, "restart_backoff_min"},
		{map[string]any{"command": "cat", "restart_backoff_min": "2s", "restart_backoff_max": "1s"}, "restart_backoff_max"},
		{map[string]any{"command": "cat", "env": map[string]any{"A=B": "c"}}, "env"},
		{map[string]any{"command": "cat", "args": map[string]any{"a": "b"}}, "args"},
	}
	for _, tt := range tests {
		t.Run(tt.param, func(t *testing.T) {
			_, errs := stagetest.Lookup(t, stages.RoleTransform, "exec").ParseParams(tt.raw)
			var pe *stages.ParamError
			if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], stages.ErrInvalidParam) {
				t.Fatalf("params %v: got %v, want one error on %s", tt.raw, errs, tt.param)
			}
		})
	}
}

func TestQuoteLine(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	got := quoteLine([]byte(long + "\n"))
	if want := `"` + strings.Repeat("é", 60) + `"… (200 bytes)`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got := quoteLine([]byte("short\r\n")); got != `"short"` {
		t.Fatalf("got %s", got)
	}
}

func TestStderrLogSplitsLines(t *testing.T) {
	logs := &stagetest.LockedBuffer{}
	s := &stderrLog{log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{ReplaceAttr: dropTime}))}
	for _, w := range []string{"one\ntw", "o\r\n\n", strings.Repeat("x", execMaxStderrLine+1), "\nlast"} {
		if n, err := s.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	s.flush()
	want := "level=INFO msg=\"command stderr\" line=one\n" +
		"level=INFO msg=\"command stderr\" line=two\n" +
		"level=INFO msg=\"command stderr\" line=" + strings.Repeat("x", execMaxStderrLine) + "\n" +
		"level=INFO msg=\"command stderr\" line=x\n" +
		"level=INFO msg=\"command stderr\" line=last\n"
	if got := logs.String(); got != want {
		t.Fatalf("logged:\n%s\nwant:\n%s", got, want)
	}
	if s.lastLine() != "last" {
		t.Fatalf("last line %q", s.lastLine())
	}
}

func TestReadLine(t *testing.T) {
	in := "a\r\n\n" + strings.Repeat("y", 100_000) + "\npartial"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	var got []int
	for {
		l, err := readLine(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, len(l.b))
	}
	if want := []int{1, 0, 100_000}; !reflect.DeepEqual(got, want) {
		t.Fatalf("line lengths %v, want %v (a last line without a break is dropped)", got, want)
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// waitGoroutines waits until no more goroutines run than before.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond) // polling for exits, not ordering
	}
}

// TestExecEnvironment: the command gets PATH, HOME and LANG from sluice
// and what env sets, never another of sluice's variables, such as its
// NATS password.
func TestExecEnvironment(t *testing.T) {
	t.Setenv("SLUICE_NATS_PASSWORD", "hunter2")
	t.Setenv("LANG", "C.UTF-8")
	tr := newExec(t, execParams(t, "serve", map[string]any{"env": map[string]any{"EXEC_TEST_VAR": "from the stage"}}), stages.Info{})
	tests := []struct {
		name, want string
	}{
		{"SLUICE_NATS_PASSWORD", ""},
		{"EXEC_TEST_VAR", "from the stage"},
		{"LANG", "C.UTF-8"},
		{"PATH", os.Getenv("PATH")},
	}
	for _, tt := range tests {
		got, err := stagetest.Process(t, tr, `{"do":"env","name":"`+tt.name+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"env":%q}`, tt.want); len(got) != 1 || got[0] != want {
			t.Errorf("%s in the command: %q, want %s", tt.name, got, want)
		}
	}
}

func TestChildEnv(t *testing.T) {
	parent := map[string]string{"PATH": "/bin", "HOME": "/home/w", "SECRET": "s"}
	lookup := func(k string) (string, bool) { v, ok := parent[k]; return v, ok }
	got := childEnv(lookup, map[string]string{"HOME": "/tmp", "A": "1"})
	want := []string{"PATH=/bin", "A=1", "HOME=/tmp"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("childEnv = %q, want %q", got, want)
	}
}
