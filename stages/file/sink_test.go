package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestFileSink(t *testing.T) {
	for _, tt := range stagetest.SinkCases() {
		t.Run(tt.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.data")
			raw := map[string]any{"path": path}
			for k, v := range tt.Raw {
				raw[k] = v
			}
			sk := stagetest.NewSink(t, "file", raw, stages.Info{})
			stagetest.RunSinkCase(t, sk, tt)
			// Every Write reached the file before Close.
			if got := stagetest.ReadString(t, path); got != tt.Want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.Want)
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := stagetest.ReadString(t, path); got != tt.Want {
				t.Fatalf("after close got\n%s\nwant\n%s", got, tt.Want)
			}
		})
	}
}

func TestFileSinkModes(t *testing.T) {
	tests := []struct {
		Name     string
		file     string
		existing string // "" for no file
		Raw      map[string]any
		write    []string
		Want     string
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
		t.Run(tt.Name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.file)
			if tt.existing != "" {
				stagetest.WriteFile(t, dir, tt.file, tt.existing)
			}
			raw := map[string]any{"path": path}
			for k, v := range tt.Raw {
				raw[k] = v
			}
			sk := stagetest.NewSink(t, "file", raw, stages.Info{})
			if len(tt.write) > 0 {
				if err := sk.Write(context.Background(), stagetest.Msgs(tt.write...)); err != nil {
					t.Fatal(err)
				}
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := stagetest.ReadString(t, path); got != tt.Want {
				t.Fatalf("got %q, want %q", got, tt.Want)
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

func TestFileSinkErrors(t *testing.T) {
	dir := t.TempDir()
	s := stagetest.Lookup(t, stages.RoleSink, "file")
	// Columns that disagree with the header of the file appended to.
	path := stagetest.WriteFile(t, dir, "o.csv", "a,b\n")
	_, err := s.NewSink(stagetest.Parse(t, s, map[string]any{"path": path, "mode": "append", "columns": []any{"b", "a"}}), stages.Info{})
	var pe *stages.ParamError
	if !errors.As(err, &pe) || pe.Param != "columns" || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error on columns naming the file", err)
	}
	if got := stagetest.ReadString(t, path); got != "a,b\n" {
		t.Fatalf("the file changed: %q", got)
	}
	// A parent that is a file.
	_, err = s.NewSink(stagetest.Parse(t, s, map[string]any{"path": filepath.Join(path, "x.jsonl")}), stages.Info{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming %s", err, path)
	}
}

func TestFileSinkClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.jsonl")
	sk := stagetest.NewSink(t, "file", map[string]any{"path": path}, stages.Info{})
	if err := sk.Write(context.Background(), stagetest.Msgs(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := sk.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sk.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := sk.Write(context.Background(), stagetest.Msgs(`2`)); !errors.Is(err, stages.ErrSinkClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if got := stagetest.ReadString(t, path); got != "1\n" {
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
			sk := stagetest.NewSink(t, "file", map[string]any{"path": path, "format": format}, stages.Info{})
			fs := sk.(*fileSink)
			var big []string
			for i := range 2000 {
				big = append(big, fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("p", 50)))
			}
			// The batch is larger than the buffer, so part of it reaches the
			// file before the failure.
			fs.cw.w = &failingWriter{w: fs.f, limit: 100 << 10}
			err := sk.Write(context.Background(), stagetest.Msgs(big...))
			if err == nil || stages.IsPermanent(err) || !strings.Contains(err.Error(), "disk full") {
				t.Fatalf("got %v, want the write error", err)
			}
			if got := stagetest.ReadString(t, path); got != "" {
				t.Fatalf("the failed batch left %d bytes", len(got))
			}
			// The retry writes the batch whole, header included.
			fs.cw.w = fs.f
			if err := sk.Write(context.Background(), stagetest.Msgs(big...)); err != nil {
				t.Fatal(err)
			}
			if err := sk.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(stagetest.ReadString(t, path), "\n"), "\n")
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
