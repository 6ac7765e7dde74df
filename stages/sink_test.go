package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// sinkCase writes batches to a sink and checks what it wrote.
type sinkCase struct {
	name    string
	raw     map[string]any
	batches [][]*Message
	bad     [][]int // per batch, the indexes of the messages that fail
	want    string
}

func sinkCases() []sinkCase {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	return []sinkCase{
		{
			name: "jsonl",
			batches: [][]*Message{
				append(msgs(`{"a":1}`, "{\n  \"c\": [1,\n 2]\n}", "not json", `{"d":"x"}`, ""),
					NewValueMessage(map[string]any{"b": "<&>"}), NewValueMessage(math.NaN())),
				msgs(`"s"`),
			},
			bad:  [][]int{{2, 4, 6}, nil},
			want: "{\"a\":1}\n{\"c\":[1,2]}\n{\"d\":\"x\"}\n{\"b\":\"<&>\"}\n\"s\"\n",
		},
		{
			name: "csv with inferred columns",
			raw:  map[string]any{"format": "csv"},
			batches: [][]*Message{
				msgs(`{"b":2,"a":"x"}`, `[1]`, `{"a":"y,z","b":null,"c":1}`),
				append(msgs(`{"a":[1,"q"],"b":{"k":true}}`, `{"a":1.5,"b":1e21}`, `{"a":9007199254740993,"b":false}`, `{"b":"line\nbreak"}`, `nope`),
					NewValueMessage(map[string]any{"a": at, "b": 3})),
			},
			bad:  [][]int{{1}, {4}},
			want: "a,b\nx,2\n\"y,z\",\n\"[1,\"\"q\"\"]\",\"{\"\"k\"\":true}\"\n1.5,1e+21\n9007199254740993,false\n,\"line\nbreak\"\n2024-05-01T12:00:00Z,3\n",
		},
		{
			name:    "csv with columns",
			raw:     map[string]any{"format": "csv", "columns": []any{"b", "a"}},
			batches: [][]*Message{msgs(`{"a":1,"b":2,"c":3}`), msgs(`{"a":4}`)},
			want:    "b,a\n2,1\n,4\n",
		},
		{
			name:    "csv header waits for a good record",
			raw:     map[string]any{"format": "csv"},
			batches: [][]*Message{msgs(`1`), msgs(`{"z":1}`)},
			bad:     [][]int{{0}, nil},
			want:    "z\n1\n",
		},
		{
			name:    "lines writes payloads as they are",
			raw:     map[string]any{"format": "lines"},
			batches: [][]*Message{msgs("plain text", `{"a":1}`, "not json, kept"), msgs("")},
			want:    "plain text\n{\"a\":1}\nnot json, kept\n\n",
		},
		{name: "empty batch", batches: [][]*Message{nil}, want: ""},
	}
}

// runSinkCase writes the case's batches to sk and checks the errors.
func runSinkCase(t *testing.T, sk Sink, tt sinkCase) {
	t.Helper()
	for i, batch := range tt.batches {
		err := sk.Write(context.Background(), batch)
		var bad []int
		if i < len(tt.bad) {
			bad = tt.bad[i]
		}
		if len(bad) == 0 {
			if err != nil {
				t.Fatalf("batch %d: %v", i, err)
			}
			continue
		}
		var be *BatchError
		if !errors.As(err, &be) || len(be.Errs) != len(batch) {
			t.Fatalf("batch %d: got %v, want a BatchError", i, err)
		}
		for j, e := range be.Errs {
			if slices.Contains(bad, j) != (e != nil) || (e != nil && !IsPermanent(e)) {
				t.Errorf("batch %d message %d: error %v", i, j, e)
			}
		}
	}
}

func TestStdoutSink(t *testing.T) {
	for _, tt := range sinkCases() {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			sk := newTestSink(t, "stdout", tt.raw, Info{Stdout: &out})
			runSinkCase(t, sk, tt)
			// Every Write flushed.
			if got := out.String(); got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFileSink(t *testing.T) {
	for _, tt := range sinkCases() {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.data")
			raw := map[string]any{"path": path}
			for k, v := range tt.raw {
				raw[k] = v
			}
			sk := newTestSink(t, "file", raw, Info{})
			runSinkCase(t, sk, tt)
			// Every Write reached the file before Close.
			if got := readString(t, path); got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := readString(t, path); got != tt.want {
				t.Fatalf("after close got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFileSinkModes(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		existing string // "" for no file
		raw      map[string]any
		write    []string
		want     string
	}{
		{"overwrite", "o.jsonl", "old\n", nil, []string{`{"a":1}`}, "{\"a\":1}\n"},
		{"overwrite without writes", "o.jsonl", "old\n", nil, nil, ""},
		{"append", "o.jsonl", "{\"old\":0}\n", map[string]any{"mode": "append"}, []string{`{"a":1}`}, "{\"old\":0}\n{\"a\":1}\n"},
		{"append to a new file", "new/sub/o.jsonl", "", map[string]any{"mode": "append"}, []string{`{"a":1}`}, "{\"a\":1}\n"},
		{"append after a torn line", "o.jsonl", "{\"old\":0}\n{\"to", map[string]any{"mode": "append"}, []string{`{"a":1}`}, "{\"old\":0}\n{\"to\n{\"a\":1}\n"},
		{"csv by extension", "o.csv", "", nil, []string{`{"b":1,"a":2}`}, "a,b\n2,1\n"},
		{"csv format", "o.txt", "", map[string]any{"format": "csv"}, []string{`{"a":2}`}, "a\n2\n"},
		{"append csv keeps the header", "o.csv", "b,a\n1,2\n", map[string]any{"mode": "append"}, []string{`{"a":3,"b":4,"c":5}`}, "b,a\n1,2\n4,3\n"},
		{"append csv with the same columns", "o.csv", "b,a\n1,2\n", map[string]any{"mode": "append", "columns": []any{"b", "a"}}, []string{`{"a":3,"b":4}`}, "b,a\n1,2\n4,3\n"},
		{"append csv to blank lines", "o.csv", "\n", map[string]any{"mode": "append"}, []string{`{"a":3}`}, "\na\n3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			if tt.existing != "" {
				writeFile(t, dir, tt.file, tt.existing)
			}
			raw := map[string]any{"path": path}
			for k, v := range tt.raw {
				raw[k] = v
			}
			sk := newTestSink(t, "file", raw, Info{})
			if len(tt.write) > 0 {
				if err := sk.Write(context.Background(), msgs(tt.write...)); err != nil {
					t.Fatal(err)
				}
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := readString(t, path); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&^0o644 != 0 {
				t.Fatalf("file mode %v", fi.Mode())
			}
		})
	}
}

func TestSinkParams(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		typ   string
		raw   map[string]any
		param string
	}{
		{"stdout", map[string]any{"columns": "a"}, "columns"},
		{"stdout", map[string]any{"format": "csv", "columns": []any{}}, "columns"},
		{"stdout", map[string]any{"format": "csv", "columns": []any{"a", "a"}}, "columns"},
		{"stdout", map[string]any{"format": "xml"}, "format"},
		{"file", map[string]any{}, "path"},
		{"file", map[string]any{"path": ""}, "path"},
		{"file", map[string]any{"path": filepath.Join(dir, "o.jsonl"), "columns": "a"}, "columns"},
		{"file", map[string]any{"path": filepath.Join(dir, "o.csv"), "format": "jsonl", "columns": "a"}, "columns"},
		{"file", map[string]any{"path": filepath.Join(dir, "o.csv"), "mode": "truncate"}, "mode"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			_, errs := lookup(t, RoleSink, tt.typ).ParseParams(tt.raw)
			var pe *ParamError
			if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], ErrInvalidParam) {
				t.Fatalf("params %v: got %v, want one error on %s", tt.raw, errs, tt.param)
			}
		})
	}
}

func TestFileSinkErrors(t *testing.T) {
	dir := t.TempDir()
	s := lookup(t, RoleSink, "file")
	// Columns that disagree with the header of the file appended to.
	path := writeFile(t, dir, "o.csv", "a,b\n")
	_, err := s.NewSink(parse(t, s, map[string]any{"path": path, "mode": "append", "columns": []any{"b", "a"}}), Info{})
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Param != "columns" || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error on columns naming the file", err)
	}
	if got := readString(t, path); got != "a,b\n" {
		t.Fatalf("the file changed: %q", got)
	}
	// A parent that is a file.
	_, err = s.NewSink(parse(t, s, map[string]any{"path": filepath.Join(path, "x.jsonl")}), Info{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming %s", err, path)
	}
}

func TestFileSinkClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.jsonl")
	sk := newTestSink(t, "file", map[string]any{"path": path}, Info{})
	if err := sk.Write(context.Background(), msgs(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := sk.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sk.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := sk.Write(context.Background(), msgs(`2`)); !errors.Is(err, errSinkClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if got := readString(t, path); got != "1\n" {
		t.Fatalf("got %q", got)
	}
}

// failingWriter fails once it has written limit bytes.
type failingWriter struct {
	w     *os.File
	limit int
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.limit {
		n, _ := f.w.Write(p[:f.limit])
		f.limit = 0
		return n, errors.New("disk full")
	}
	f.limit -= len(p)
	return f.w.Write(p)
}

func TestFileSinkFailedWriteIsTakenBack(t *testing.T) {
	for _, format := range []string{"jsonl", "csv"} {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "o.out")
			sk := newTestSink(t, "file", map[string]any{"path": path, "format": format}, Info{})
			fs := sk.(*fileSink)
			var big []string
			for i := range 2000 {
				big = append(big, fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("p", 50)))
			}
			// The batch is larger than the buffer, so part of it reaches the
			// file before the failure.
			fs.cw.w = &failingWriter{w: fs.f, limit: 100 << 10}
			err := sk.Write(context.Background(), msgs(big...))
			if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "disk full") {
				t.Fatalf("got %v, want the write error", err)
			}
			if got := readString(t, path); got != "" {
				t.Fatalf("the failed batch left %d bytes", len(got))
			}
			// The retry writes the batch whole, header included.
			fs.cw.w = fs.f
			if err := sk.Write(context.Background(), msgs(big...)); err != nil {
				t.Fatal(err)
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(readString(t, path), "\n"), "\n")
			want := len(big)
			if format == "csv" {
				want++
				if lines[0] != "n,pad" {
					t.Fatalf("header %q", lines[0])
				}
			}
			if len(lines) != want {
				t.Fatalf("got %d lines, want %d", len(lines), want)
			}
		})
	}
}

func TestSinkConcurrentWrites(t *testing.T) {
	const writers, batches, size = 8, 25, 20
	for _, typ := range []string{"file", "stdout"} {
		t.Run(typ, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "o.jsonl")
			out := &lockedBuffer{}
			raw := map[string]any{"path": path}
			if typ == "stdout" {
				raw = nil
			}
			sk := newTestSink(t, typ, raw, Info{Stdout: out})
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					for b := range batches {
						batch := make([]*Message, size)
						for i := range batch {
							batch[i] = NewValueMessage(map[string]any{"w": w, "b": b, "i": i, "pad": strings.Repeat("x", 100)})
						}
						if err := sk.Write(context.Background(), batch); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if typ == "file" {
				got = readString(t, path)
			}
			seen := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				v, err := DecodeJSON([]byte(line))
				if err != nil {
					t.Fatalf("torn line %q: %v", line, err)
				}
				rec := v.(map[string]any)
				seen[fmt.Sprint(rec["w"], rec["b"], rec["i"])] = true
			}
			if len(seen) != writers*batches*size {
				t.Fatalf("got %d distinct records, want %d", len(seen), writers*batches*size)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer for a sink that is expected to serialise
// its writes; the lock only keeps the race detector honest about it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDiscardSink(t *testing.T) {
	sk := newTestSink(t, "discard", nil, Info{})
	for _, n := range []int{3, 0, 5} {
		if err := sk.Write(context.Background(), msgs(slices.Repeat([]string{"x"}, n)...)); err != nil {
			t.Fatal(err)
		}
	}
	if got := sk.(*discardSink).n.Load(); got != 8 {
		t.Fatalf("counted %d, want 8", got)
	}
}

func TestCSVField(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{nil, ""}, {"s", "s"}, {true, "true"}, {int64(-3), "-3"}, {7, "7"},
		{1.5, "1.5"}, {1e21, "1e+21"}, {1e-7, "1e-7"}, {100.0, "100"}, {0.0, "0"},
		{[]any{"a"}, `["a"]`}, {map[string]any{"k": "<"}, `{"k":"<"}`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05Z"},
	} {
		got, err := csvField(tt.v)
		if err != nil || got != tt.want {
			t.Errorf("csvField(%#v) = %q, %v; want %q", tt.v, got, err, tt.want)
		}
		if f, ok := tt.v.(float64); ok {
			// Numbers read as they would in JSON.
			b, _ := EncodeJSON(f)
			if string(b) != got {
				t.Errorf("csvField(%v) = %s, JSON has %s", f, got, b)
			}
		}
	}
	if _, err := csvField(make(chan int)); err == nil {
		t.Error("csvField of a channel: no error")
	}
}
