package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestFileSource(t *testing.T) {
	tests := []struct {
		name    string
		file    string // name in a temp dir
		content string
		format  string // "" infers
		want    []string
	}{
		{"jsonl", "in.jsonl", "{\"a\":1}\n\n  \n{\"b\": 2}\r\n\t\n{\"c\":3}", "", []string{`{"a":1}`, `{"b": 2}`, `{"c":3}`}},
		{"jsonl passes a bad line on", "in.ndjson", "{\"a\":1}\nnot json\n", "", []string{`{"a":1}`, "not json"}},
		{"json extension", "in.json", "1\n2\n", "", []string{"1", "2"}},
		{"lines", "in.txt", "a\r\nb\n\n c \n", "", []string{"a", "b", "", " c "}},
		{"lines without newline at the end", "in.log", "a\nb", "", []string{"a", "b"}},
		{"empty", "in.jsonl", "", "", nil},
		{"csv", "in.csv", "id,name\n1,alice\r\n2,\"bob, \"\"jr\"\"\"\n\n3,\"multi\nline\"\n", "",
			[]string{`{"id":"1","name":"alice"}`, `{"id":"2","name":"bob, \"jr\""}`, `{"id":"3","name":"multi\nline"}`}},
		{"csv with a byte order mark", "in.csv", "\ufeffid,n\n1,2\n", "", []string{`{"id":"1","n":"2"}`}},
		{"csv header only", "in.csv", "id,name\n", "", nil},
		{"format overrides the extension", "in.txt", "a,b\n1,2\n", "csv", []string{`{"a":"1","b":"2"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := map[string]any{"path": stagetest.WriteFile(t, t.TempDir(), tt.file, tt.content)}
			if tt.format != "" {
				raw["format"] = tt.format
			}
			src := stagetest.NewSource(t, "file", raw, stages.Info{})
			if got := stagetest.Payloads(t, src); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if _, err := src.Read(context.Background()); !errors.Is(err, io.EOF) {
				t.Fatalf("read after the end: %v", err)
			}
		})
	}
}

func TestFileSourceCSVBadRows(t *testing.T) {
	content := "a,b\n1,2\n3\n\n\"x,y\",z,w\r\n4,5\nq\"q,6\n7,8"
	path := stagetest.WriteFile(t, t.TempDir(), "in.csv", content)
	got := stagetest.ReadAll(t, stagetest.NewSource(t, "file", map[string]any{"path": path}, stages.Info{}))
	want := []struct {
		payload string
		err     string // "" for none
	}{
		{`{"a":"1","b":"2"}`, ""},
		{"3", "file " + path + " line 3: row has 1 fields, header has 2"},
		{`"x,y",z,w`, "file " + path + " line 5: row has 3 fields, header has 2"},
		{`{"a":"4","b":"5"}`, ""},
		{`q"q,6`, "file " + path + ` line 7: bare " in non-quoted-field`},
		{`{"a":"7","b":"8"}`, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records %v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Payload != w.payload {
			t.Errorf("record %d: payload %q, want %q", i, g.Payload, w.payload)
		}
		switch {
		case w.err == "" && g.Err != nil:
			t.Errorf("record %d: unexpected error %v", i, g.Err)
		case w.err != "" && (g.Err == nil || g.Err.Error() != w.err || !errors.Is(g.Err, stages.ErrPermanent)):
			t.Errorf("record %d: error %v, want permanent %q", i, g.Err, w.err)
		}
	}
}

// TestFileSourceCSVOddHeader: a repeated column name and an empty one
// are renamed, so that no column is lost.
func TestFileSourceCSVOddHeader(t *testing.T) {
	path := stagetest.WriteFile(t, t.TempDir(), "in.csv", "\ufeffa,b,a,\n1,2,3,4\n")
	src := stagetest.NewSource(t, "file", map[string]any{"path": path}, stages.Info{})
	m, err := src.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := m.Record()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"a": "1", "b": "2", "a_2": "3", "column_4": "4"}; !reflect.DeepEqual(rec, want) {
		t.Errorf("record %v, want %v", rec, want)
	}
}

func TestFileSourceGlob(t *testing.T) {
	dir := t.TempDir()
	stagetest.WriteFile(t, dir, "b.jsonl", "{\"f\":\"b1\"}\n{\"f\":\"b2\"}\n")
	stagetest.WriteFile(t, dir, "a.jsonl", "{\"f\":\"a1\"}\n")
	stagetest.WriteFile(t, dir, "c.csv", "f\nc1\n")
	stagetest.WriteFile(t, dir, "d.csv", "g,f\n1,d1\n")
	stagetest.WriteFile(t, dir, "skip.txt", "nope\n")
	if err := os.Mkdir(filepath.Join(dir, "z.jsonl"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pattern string
		want    []string
	}{
		{"*.jsonl", []string{`{"f":"a1"}`, `{"f":"b1"}`, `{"f":"b2"}`}},
		{"?.csv", []string{`{"f":"c1"}`, `{"f":"d1","g":"1"}`}},
		{"[ac].*", []string{`{"f":"a1"}`, `{"f":"c1"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			src := stagetest.NewSource(t, "file", map[string]any{"path": filepath.Join(dir, tt.pattern)}, stages.Info{})
			if got := stagetest.Payloads(t, src); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFileSourceErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path, want string
		is               error
	}{
		{"missing file", filepath.Join(dir, "nope.jsonl"), "file " + filepath.Join(dir, "nope.jsonl") + ": stat: no such file or directory", fs.ErrNotExist},
		{"no match", filepath.Join(dir, "*.csv"), `file pattern "` + filepath.Join(dir, "*.csv") + `" matches no file: file does not exist`, fs.ErrNotExist},
		{"bad pattern", filepath.Join(dir, "[.csv"), `file pattern "` + filepath.Join(dir, "[.csv") + `": syntax error in pattern`, filepath.ErrBadPattern},
		{"directory", dir, "file " + dir + ": is a directory", nil},
	}
	s := stagetest.Lookup(t, stages.RoleSource, "file")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.NewSource(stagetest.Parse(t, s, map[string]any{"path": tt.path}), stages.Info{})
			if err == nil || err.Error() != tt.want || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestFileSourceLongLines(t *testing.T) {
	long := strings.Repeat("x", 3<<19) // over 1 MiB
	tests := []struct {
		file, content string
		want          []string
	}{
		{"in.jsonl", `{"s":"` + long + "\"}\n{}\n", []string{`{"s":"` + long + `"}`, "{}"}},
		{"in.txt", long + "\r\nshort", []string{long, "short"}},
		{"in.csv", "s,n\n" + long + ",1\n" + long + "\n", []string{`{"n":"1","s":"` + long + `"}`, long}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			src := stagetest.NewSource(t, "file", map[string]any{"path": stagetest.WriteFile(t, t.TempDir(), tt.file, tt.content)}, stages.Info{})
			got := stagetest.ReadAll(t, src)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].Payload != tt.want[i] {
					t.Errorf("record %d: got %d bytes, want %d", i, len(got[i].Payload), len(tt.want[i]))
				}
			}
		})
	}
}

func TestFileSourceClose(t *testing.T) {
	dir := t.TempDir()
	stagetest.WriteFile(t, dir, "a.jsonl", "1\n2\n")
	stagetest.WriteFile(t, dir, "b.jsonl", "3\n")
	src := stagetest.NewSource(t, "file", map[string]any{"path": filepath.Join(dir, "*.jsonl")}, stages.Info{})
	if _, err := src.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := src.(*fileSource).f
	if err := src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the open file is not closed: %v", err)
	}
	if err := src.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := src.Read(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("read after close: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src = stagetest.NewSource(t, "file", map[string]any{"path": filepath.Join(dir, "a.jsonl")}, stages.Info{})
	if _, err := src.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("read with a cancelled ctx: %v", err)
	}
}

func TestInputFormat(t *testing.T) {
	for name, want := range map[string]string{
		"a.csv": "csv", "A.CSV": "csv", "a.jsonl": "jsonl", "a.ndjson": "jsonl", "a.json": "jsonl",
		"a.txt": "lines", "a": "lines", "dir.csv/a.log": "lines", "*.csv": "csv",
	} {
		if got := records.InputFormat(name); got != want {
			t.Errorf("inputFormat(%q) = %s, want %s", name, got, want)
		}
	}
}

// TestFileSourceGlobResume checks that the checkpoint of a glob pattern
// is per file: a resumed source skips the files it finished, goes on
// inside the one it was reading, reads the rest in the same order, and
// then the files that appeared in between, wherever they sort.
func TestFileSourceGlobResume(t *testing.T) {
	setup := func(t *testing.T) (dir string, raw map[string]any) {
		dir = t.TempDir()
		stagetest.WriteFile(t, dir, "a.jsonl", "{\"f\":\"a1\"}\n{\"f\":\"a2\"}\n")
		stagetest.WriteFile(t, dir, "b.json", "[{\"f\":\"b1\"},\n {\"f\":\"b2\"}, {\"f\":\"b3\"}]")
		writeCompressed(t, dir, "c.csv.gz", "f\nc1\nc2\n")
		return dir, map[string]any{"path": filepath.Join(dir, "*")}
	}
	old := []string{`{"f":"a1"}`, `{"f":"a2"}`, `{"f":"b1"}`, `{"f":"b2"}`, `{"f":"b3"}`, `{"f":"c1"}`, `{"f":"c2"}`}
	// readK reads k records of a source, resumed from cp unless it is nil,
	// and returns them and its checkpoint.
	readK := func(t *testing.T, raw map[string]any, cp []byte, k int) ([]string, []byte) {
		t.Helper()
		src := stagetest.NewSource(t, "file", raw, stages.Info{}).(stages.Resumable)
		if cp != nil {
			if err := src.Resume(cp); err != nil {
				t.Fatalf("resume from %s: %v", cp, err)
			}
		}
		var got []string
		for range k {
			m, err := src.Read(context.Background())
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
			got = append(got, stagetest.PayloadOf(t, m))
		}
		next, err := src.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		return got, next
	}

	t.Run("files added before the resume are read after the others", func(t *testing.T) {
		for k := 0; k <= len(old); k++ {
			dir, raw := setup(t)
			got, cp := readK(t, raw, nil, k)
			var c fileCheckpoint
			if err := json.Unmarshal(cp, &c); err != nil {
				t.Fatal(err)
			}
			if want := []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.json"), filepath.Join(dir, "c.csv.gz")}; !reflect.DeepEqual(c.Files, want) {
				t.Fatalf("k=%d: checkpoint %s lists %q, want %q", k, cp, c.Files, want)
			}
			// Before a, between a and b, after c.
			stagetest.WriteFile(t, dir, "0.jsonl", "{\"f\":\"new0\"}\n")
			stagetest.WriteFile(t, dir, "ab.json", "[{\"f\":\"newab\"}]")
			writeCompressed(t, dir, "d.jsonl.zst", "{\"f\":\"newd\"}\n")
			got = append(got, rest(t, raw, cp)...)
			want := append(slices.Clone(old), `{"f":"new0"}`, `{"f":"newab"}`, `{"f":"newd"}`)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("k=%d, checkpoint %s:\ngot  %q\nwant %q", k, cp, got, want)
			}
		}
	})

	t.Run("resumed twice", func(t *testing.T) {
		for k := 0; k <= len(old); k++ {
			for j := 0; j <= len(old)-k+2; j++ {
				dir, raw := setup(t)
				got, cp := readK(t, raw, nil, k)
				stagetest.WriteFile(t, dir, "ab.jsonl", "{\"f\":\"ab\"}\n")
				stagetest.WriteFile(t, dir, "d.jsonl", "{\"f\":\"d\"}\n")
				more, cp2 := readK(t, raw, cp, j)
				got = append(got, more...)
				stagetest.WriteFile(t, dir, "aa.jsonl", "{\"f\":\"aa\"}\n")
				got = append(got, rest(t, raw, cp2)...)
				want := append(slices.Clone(old), `{"f":"ab"}`, `{"f":"d"}`, `{"f":"aa"}`)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("k=%d, j=%d, checkpoints %s then %s:\ngot  %q\nwant %q", k, j, cp, cp2, got, want)
				}
			}
		}
	})

	t.Run("after the last file", func(t *testing.T) {
		dir, raw := setup(t)
		src := stagetest.NewSource(t, "file", raw, stages.Info{}).(stages.Resumable)
		stagetest.Payloads(t, src)
		cp, err := src.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"offset":0,"line":0,"files":["` + strings.Join([]string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.json"), filepath.Join(dir, "c.csv.gz")}, `","`) + `"]}`; string(cp) != want {
			t.Fatalf("checkpoint %s, want %s", cp, want)
		}
		stagetest.WriteFile(t, dir, "b2.jsonl", "{\"f\":\"new\"}\n")
		if got, want := rest(t, raw, cp), []string{`{"f":"new"}`}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})

	t.Run("a finished file may go", func(t *testing.T) {
		dir, raw := setup(t)
		got, cp := readK(t, raw, nil, 3) // in b
		if err := os.Remove(filepath.Join(dir, "a.jsonl")); err != nil {
			t.Fatal(err)
		}
		src := stagetest.NewSource(t, "file", raw, stages.Info{}).(stages.Resumable)
		if err := src.Resume(cp); err != nil {
			t.Fatal(err)
		}
		var c fileCheckpoint
		if err := json.Unmarshal(cp, &c); err != nil {
			t.Fatal(err)
		}
		var size int64
		for _, name := range []string{"b.json", "c.csv.gz"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			size += fi.Size()
		}
		if done, total := progressOf(t, src); done != c.Offset || total != size {
			t.Fatalf("progress %d/%d after resuming at byte %d of b with a gone, want %d/%d", done, total, c.Offset, c.Offset, size)
		}
		got = append(got, stagetest.Payloads(t, src)...)
		if !reflect.DeepEqual(got, old) {
			t.Fatalf("got %q, want %q", got, old)
		}
	})

	t.Run("a file still to read may not", func(t *testing.T) {
		dir, raw := setup(t)
		_, cp := readK(t, raw, nil, 3) // in b
		if err := os.Remove(filepath.Join(dir, "c.csv.gz")); err != nil {
			t.Fatal(err)
		}
		src := stagetest.NewSource(t, "file", raw, stages.Info{}).(stages.Resumable)
		err := src.Resume(cp)
		if err == nil || !stagetest.ContainsAll(err.Error(), filepath.Join(dir, "c.csv.gz"), "still to read") {
			t.Fatalf("got %v, want an error naming c.csv.gz", err)
		}
	})

	t.Run("a checkpoint without the list", func(t *testing.T) {
		for k := 0; k <= len(old); k++ {
			_, raw := setup(t)
			got, cp := readK(t, raw, nil, k)
			var c map[string]any
			if err := json.Unmarshal(cp, &c); err != nil {
				t.Fatal(err)
			}
			delete(c, "files")
			cp, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rest(t, raw, cp)...)
			if !reflect.DeepEqual(got, old) {
				t.Fatalf("k=%d, checkpoint %s:\ngot  %q\nwant %q", k, cp, got, old)
			}
		}
	})
}

// TestFileSourceGlobResumeLongList checks a glob whose list of files is
// too long for a checkpoint: the checkpoint leaves it out, and a resumed
// run counts the files sorted before the checkpoint's as read.
func TestFileSourceGlobResumeLongList(t *testing.T) {
	name := func(i int) string { return fmt.Sprintf("%04d-%s.jsonl", i, strings.Repeat("x", 200)) }
	write := func(dir string, from, to int) {
		for i := from; i < to; i++ {
			stagetest.WriteFile(t, dir, name(i), fmt.Sprintf("%d\n", i))
		}
	}
	// Names of about 260 bytes: the list fits in maxListed while the
	// files are fewer than about a thousand.
	fits := func(dir string) int { return maxListed/(len(filepath.Join(dir, name(0)))+3) - 10 }
	numbers := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprint(i))
		}
		return out
	}

	t.Run("a list that grows too long on resume", func(t *testing.T) {
		dir := t.TempDir()
		raw := map[string]any{"path": filepath.Join(dir, "*.jsonl")}
		fit := fits(dir)
		write(dir, 0, fit)
		src := stagetest.NewSource(t, "file", raw, stages.Info{}).(stages.Resumable)
		var got []string
		for range 5 {
			m, err := src.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, stagetest.PayloadOf(t, m))
		}
		cp, err := src.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(cp), `"files":[`) {
			t.Fatalf("checkpoint of %d files has no list", fit)
		}
		write(dir, fit, fit+40) // past maxListed, all sorting after the fifth file
		resumed := stagetest.NewSource(t, "file", raw, stages.Info{}).(stages.Resumable)
		if err := resumed.Resume(cp); err != nil {
			t.Fatal(err)
		}
		if cp2, err := resumed.Checkpoint(); err != nil || strings.Contains(string(cp2), `"files"`) {
			t.Fatalf("resumed with %d files: checkpoint %.200s (%v), want one without a list", fit+40, cp2, err)
		}
		got = append(got, stagetest.Payloads(t, resumed)...)
		if want := numbers(0, fit+40); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %d records, want %d in order", len(got), len(want))
		}
	})

	t.Run("a list too long from the start", func(t *testing.T) {
		dir := t.TempDir()
		raw := map[string]any{"path": filepath.Join(dir, "*.jsonl")}
		fit := fits(dir)
		write(dir, 0, fit+40)
		src := stagetest.NewSource(t, "file", raw, stages.Info{}).(stages.Resumable)
		for range 7 {
			if _, err := src.Read(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		cp, err := src.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(cp), `"files"`) {
			t.Fatalf("checkpoint of %d files has a list: %.200s", fit+40, cp)
		}
		if got, want := rest(t, raw, cp), numbers(7, fit+40); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %d records, want %d in order", len(got), len(want))
		}
	})
}

// rest returns what a source reads after resuming at checkpoint cp.
func rest(t *testing.T, raw map[string]any, cp []byte) []string {
	t.Helper()
	src := stagetest.NewSource(t, "file", raw, stages.Info{}).(stages.Resumable)
	if err := src.Resume(cp); err != nil {
		t.Fatalf("resume from %.300s: %v", cp, err)
	}
	return stagetest.Payloads(t, src)
}
