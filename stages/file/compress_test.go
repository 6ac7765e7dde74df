package file

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// compress returns content compressed as a file with extension ext
// (.gz, .zst or .zstd) holds it.
func compress(t *testing.T, ext, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch strings.ToLower(ext) {
	case ".gz":
		w = gzip.NewWriter(&buf)
	case ".zst", ".zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		t.Fatalf("no compression for %q", ext)
	}
	if _, err := io.WriteString(w, content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeCompressed writes content compressed, as the extension of name
// says, to name in dir and returns its path.
func writeCompressed(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, compress(t, filepath.Ext(name), content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFileSourceCompressed(t *testing.T) {
	formats := []struct {
		name     string
		file     string // the name before the compression's extension
		content  string
		format   string // "" infers
		encoding string
		want     []string
	}{
		{"jsonl", "orders.jsonl", "{\"a\":1}\n\n{\"b\": 2}\r\n", "", "", []string{`{"a":1}`, `{"b": 2}`}},
		{"json array", "orders.json", "[\n {\"a\": 1},\n {\"b\": [2]}\n]\n", "", "", []string{`{"a":1}`, `{"b":[2]}`}},
		{"json lines in a .json file", "orders.json", "{\"a\": 1}\n", "", "", []string{`{"a": 1}`}},
		{"csv", "orders.csv", "id,name\n1,alice\n2,\"bob\nby\"\n", "", "", []string{`{"id":"1","name":"alice"}`, `{"id":"2","name":"bob\nby"}`}},
		{"lines", "orders.txt", "a\r\n\nb", "", "", []string{"a", "", "b"}},
		{"format given", "orders", "[1, 2]", "json", "", []string{"1", "2"}},
		{"csv in latin1", "orders.csv", "id,name\n1,caf\xe9\n", "", "latin1", []string{`{"id":"1","name":"café"}`}},
		{"json array in utf-16", "orders.json", "\xff\xfe[\x001\x00,\x00 \x00\"\x00\xe9\x00\"\x00]\x00", "", "utf-16", []string{"1", `"é"`}},
	}
	for _, ext := range []string{".gz", ".zst", ".zstd", ".GZ"} {
		for _, tt := range formats {
			t.Run(ext+"/"+tt.name, func(t *testing.T) {
				raw := map[string]any{"path": writeCompressed(t, t.TempDir(), tt.file+ext, tt.content)}
				if tt.format != "" {
					raw["format"] = tt.format
				}
				if tt.encoding != "" {
					raw["encoding"] = tt.encoding
				}
				src := stagetest.NewSource(t, "file", raw, stages.Info{})
				if got := stagetest.Payloads(t, src); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
				if done, total := progressOf(t, src); done != total || total <= 0 {
					t.Fatalf("at the end: progress %d/%d, want the compressed file read whole", done, total)
				}
				if err := src.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestFileSourceCompressedGlob(t *testing.T) {
	dir := t.TempDir()
	writeCompressed(t, dir, "a.jsonl.gz", "{\"f\":\"a1\"}\n{\"f\":\"a2\"}\n")
	stagetest.WriteFile(t, dir, "b.jsonl", "{\"f\":\"b1\"}\n")
	writeCompressed(t, dir, "c.json.zst", `[{"f":"c1"}, {"f":"c2"}]`)
	// Two gzip members one after the other are one stream, as gzip -d has it.
	multi := append(compress(t, ".gz", "{\"f\":\"d1\"}\n"), compress(t, ".gz", "{\"f\":\"d2\"}\n")...)
	if err := os.WriteFile(filepath.Join(dir, "d.jsonl.gz"), multi, 0o644); err != nil {
		t.Fatal(err)
	}
	src := stagetest.NewSource(t, "file", map[string]any{"path": filepath.Join(dir, "*")}, stages.Info{})
	want := []string{`{"f":"a1"}`, `{"f":"a2"}`, `{"f":"b1"}`, `{"f":"c1"}`, `{"f":"c2"}`, `{"f":"d1"}`, `{"f":"d2"}`}
	if got := stagetest.Payloads(t, src); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestFileSourceCompressedBroken checks that a compressed file that does
// not decompress stops the source with an error naming it, after the
// records before the fault.
func TestFileSourceCompressedBroken(t *testing.T) {
	content := strings.Repeat("{\"a\":1}\n", 1000)
	tests := []struct {
		name  string
		file  string
		bytes func(t *testing.T) []byte
		want  string // in the error, after "file PATH: "
	}{
		{"not gzip", "in.jsonl.gz", func(*testing.T) []byte { return []byte(content) }, "gzip: gzip: invalid header"},
		{"empty gzip", "in.jsonl.gz", func(*testing.T) []byte { return nil }, "gzip: unexpected EOF: the file is empty"},
		{"not zstd", "in.jsonl.zst", func(*testing.T) []byte { return []byte(content) }, "magic number mismatch"},
		{"empty zstd", "in.jsonl.zst", func(*testing.T) []byte { return nil }, "zstd: unexpected EOF: the file is empty"},
		{"truncated gzip", "in.jsonl.gz", func(t *testing.T) []byte {
			b := compress(t, ".gz", content)
			return b[:len(b)-10]
		}, "unexpected EOF"},
		{"truncated zstd", "in.jsonl.zst", func(t *testing.T) []byte {
			b := compress(t, ".zst", content)
			return b[:len(b)/2]
		}, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(path, tt.bytes(t), 0o644); err != nil {
				t.Fatal(err)
			}
			src := stagetest.NewSource(t, "file", map[string]any{"path": path}, stages.Info{})
			var err error
			for range 2000 {
				if _, err = src.Read(context.Background()); err != nil {
					break
				}
			}
			if err == nil || errors.Is(err, io.EOF) || stages.IsPermanent(err) || !strings.HasPrefix(err.Error(), "file "+path+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error of file %s saying %q", err, path, tt.want)
			}
		})
	}
}

func TestCompressionOf(t *testing.T) {
	tests := []struct{ name, compression, plain string }{
		{"a.jsonl.gz", compressionGzip, "a.jsonl"},
		{"A.CSV.GZ", compressionGzip, "A.CSV"},
		{"a.json.zst", compressionZstd, "a.json"},
		{"dir.gz/a.zstd", compressionZstd, "dir.gz/a"},
		{"a.gzip", compressionNone, "a.gzip"},
		{"dir.gz/a.csv", compressionNone, "dir.gz/a.csv"},
	}
	for _, tt := range tests {
		if c, p := compressionOf(tt.name); c != tt.compression || p != tt.plain {
			t.Errorf("compressionOf(%q) = %q, %q, want %q, %q", tt.name, c, p, tt.compression, tt.plain)
		}
	}
}
