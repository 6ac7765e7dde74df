package builtin

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestSourceResumeErrors(t *testing.T) {
	dir := t.TempDir()
	path := stagetest.WriteFile(t, dir, "in.jsonl", "1\n2\n")
	tests := []struct {
		name, typ  string
		raw        map[string]any
		checkpoint string
		want       string
	}{
		{"not json", "file", map[string]any{"path": path}, "nope", "checkpoint"},
		{"file no longer read", "file", map[string]any{"path": path}, `{"file":"` + dir + `/gone.jsonl","offset":2}`, "not among the files"},
		{"generate", "generate", map[string]any{"count": 2}, "x", "not a record count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := stagetest.NewSource(t, tt.typ, tt.raw, stages.Info{}).(stages.Resumable)
			err := src.Resume([]byte(tt.checkpoint))
			if err == nil || !stagetest.ContainsAll(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("file shrank", func(t *testing.T) {
		src := stagetest.NewSource(t, "file", map[string]any{"path": path}, stages.Info{}).(stages.Resumable)
		if err := src.Resume([]byte(`{"file":"` + path + `","offset":100,"line":9}`)); err != nil {
			t.Fatal(err)
		}
		_, err := src.Read(context.Background())
		if err == nil || !stagetest.ContainsAll(err.Error(), path, "cannot resume at byte 100") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestSourceResume reads each source to the end, then for every k reads k
// records, takes a checkpoint, resumes a fresh source from it and reads the
// rest: the two parts together must be the whole input, errors included.
func TestSourceResume(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // in a temp dir
		raw   func(dir string) map[string]any
	}{
		{
			name:  "jsonl",
			files: map[string]string{"in.jsonl": "{\"a\":1}\n\n  \n{\"b\": 2}\r\n\t\nnot json\n{\"c\":3}"},
			raw:   func(dir string) map[string]any { return map[string]any{"path": dir + "/in.jsonl"} },
		},
		{
			name:  "lines",
			files: map[string]string{"in.txt": "a\r\nb\n\n c \nlast"},
			raw:   func(dir string) map[string]any { return map[string]any{"path": dir + "/in.txt"} },
		},
		{
			name:  "csv with bad rows",
			files: map[string]string{"in.csv": "\ufeffid,name\n1,alice\r\n2,\"bob, \"\"jr\"\"\"\n\n3\n4,\"multi\nline\"\nq\"q,6\n5,e\n"},
			raw:   func(dir string) map[string]any { return map[string]any{"path": dir + "/in.csv"} },
		},
		{
			name: "glob over three files",
			files: map[string]string{
				"a.csv": "x,y\n1,2\n3,4\n",
				"b.csv": "x,y\n",
				"c.csv": "y,x\n5,6\n7\n8,9",
			},
			raw: func(dir string) map[string]any { return map[string]any{"path": dir + "/*.csv"} },
		},
		{
			name:  "json array",
			files: map[string]string{"in.json": "[\n {\"a\": 1},\n\n  [1, {\"b\": [2, 3]}] ,\"s\", null,\n {\"bad\": \"\xff\"}, 42 ]\n"},
			raw:   func(dir string) map[string]any { return map[string]any{"path": dir + "/in.json"} },
		},
		{
			name:  "json array with a byte order mark",
			files: map[string]string{"in.json": "\ufeff[1,2,\n3]"},
			raw:   func(dir string) map[string]any { return map[string]any{"path": dir + "/in.json"} },
		},
		{
			name:  "json array, format given",
			files: map[string]string{"in.txt": "[{\"a\":1},{\"b\":2},{\"c\":3}]"},
			raw:   func(dir string) map[string]any { return map[string]any{"path": dir + "/in.txt", "format": "json"} },
		},
		{
			name:  "jsonl gzip",
			files: map[string]string{"in.jsonl.gz": "{\"a\":1}\n\nnot json\n{\"b\": 2}\r\n{\"c\":3}"},
			raw:   func(dir string) map[string]any { return map[string]any{"path": dir + "/in.jsonl.gz"} },
		},
		{
			name:  "json array zstd in latin1",
			files: map[string]string{"in.json.zst": "[\"caf\xe9\",\n {\"n\": \"\xe0\"}, 3]"},
			raw: func(dir string) map[string]any {
				return map[string]any{"path": dir + "/in.json.zst", "encoding": "latin1"}
			},
		},
		{
			name:  "csv gzip with bad rows",
			files: map[string]string{"in.csv.gz": "id,name\n1,alice\n3\n4,\"multi\nline\"\n5,e\n"},
			raw:   func(dir string) map[string]any { return map[string]any{"path": dir + "/in.csv.gz"} },
		},
		{
			name:  "lines zstd",
			files: map[string]string{"in.log.zstd": "a\r\nb\n\n c \nlast"},
			raw:   func(dir string) map[string]any { return map[string]any{"path": dir + "/in.log.zstd"} },
		},
		{
			name: "glob over json arrays and compressed files",
			files: map[string]string{
				"a.json":     "[{\"f\": \"a1\"},\n {\"f\": \"a2\"}]",
				"b.jsonl.gz": "{\"f\":\"b1\"}\n{\"f\":\"b2\"}\n{\"f\":\"b3\"}\n",
				"c.json.zst": "[]",
				"d.csv.zst":  "f\nd1\nd2\n",
				"e.json":     "{\"f\":\"e1\"}\n",
			},
			raw: func(dir string) map[string]any { return map[string]any{"path": dir + "/*"} },
		},
		{
			name: "generate",
			raw: func(string) map[string]any {
				return map[string]any{"count": 7, "template": `{"seq": seq}`}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				stagetest.WriteFile(t, dir, name, compressed(t, name, content))
			}
			typ := "file"
			if tt.files == nil {
				typ = "generate"
			}
			want := describeReads(stagetest.ReadAll(t, stagetest.NewSource(t, typ, tt.raw(dir), stages.Info{})))
			for k := 0; k <= len(want); k++ {
				first := stagetest.NewSource(t, typ, tt.raw(dir), stages.Info{}).(stages.Resumable)
				got := make([]string, 0, len(want))
				for range k {
					m, err := first.Read(context.Background())
					if err != nil && !stages.IsPermanent(err) {
						t.Fatalf("k=%d: %v", k, err)
					}
					got = append(got, describeReads([]stagetest.Read{{Payload: stagetest.PayloadOf(t, m), Err: err}})...)
				}
				cp, err := first.Checkpoint()
				if err != nil {
					t.Fatalf("k=%d: checkpoint: %v", k, err)
				}
				second := stagetest.NewSource(t, typ, tt.raw(dir), stages.Info{}).(stages.Resumable)
				if err := second.Resume(cp); err != nil {
					t.Fatalf("k=%d: resume from %s: %v", k, cp, err)
				}
				got = append(got, describeReads(stagetest.ReadAll(t, second))...)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("k=%d, checkpoint %s:\ngot  %q\nwant %q", k, cp, got, want)
				}
			}
		})
	}
}

func describeReads(rs []stagetest.Read) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Payload
		if r.Err != nil {
			out[i] += fmt.Sprintf(" (error: %v)", r.Err)
		}
	}
	return out
}

// compressed returns content as a file of that name holds it: compressed
// with gzip for .gz, with zstd for .zst and .zstd, else as it is.
func compressed(t *testing.T, name, content string) string {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch filepath.Ext(name) {
	case ".gz":
		w = gzip.NewWriter(&buf)
	case ".zst", ".zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		return content
	}
	if _, err := io.WriteString(w, content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
