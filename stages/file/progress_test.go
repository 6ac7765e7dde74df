package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// progressOf returns the progress of src, which must report it.
func progressOf(t *testing.T, src stages.Source) (done, total int64) {
	t.Helper()
	pr, ok := src.(stages.ProgressReporter)
	if !ok {
		t.Fatalf("%T does not report progress", src)
	}
	return pr.Progress()
}

// readN reads n records of src, checking that its progress never goes
// back nor past total.
func readN(t *testing.T, src stages.Source, n int, total int64) {
	t.Helper()
	last, _ := progressOf(t, src)
	for i := range n {
		if _, err := src.Read(context.Background()); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		done, tot := progressOf(t, src)
		if tot != total || done < last || done > total {
			t.Fatalf("record %d: progress %d/%d after %d/%d", i, done, tot, last, total)
		}
		last = done
	}
}

// readToEnd reads src until io.EOF and checks that it reports all read.
func readToEnd(t *testing.T, src stages.Source, total int64) {
	t.Helper()
	for {
		_, err := src.Read(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if done, tot := progressOf(t, src); done != total || tot != total {
		t.Fatalf("at the end: progress %d/%d, want %d/%d", done, tot, total, total)
	}
	if err := src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if done, tot := progressOf(t, src); done != total || tot != total {
		t.Fatalf("after Close: progress %d/%d, want %d/%d", done, tot, total, total)
	}
}

func TestFileSourceProgress(t *testing.T) {
	dir := t.TempDir()
	// Files larger than a read buffer, so that progress moves within one.
	var sizes []int64
	for _, name := range []string{"a.csv", "b.csv"} {
		var b strings.Builder
		b.WriteString("id,text\n")
		for i := range 4000 {
			fmt.Fprintf(&b, "%d,%s\n", i, strings.Repeat("x", 60))
		}
		stagetest.WriteFile(t, dir, name, b.String())
		sizes = append(sizes, int64(b.Len()))
	}
	total := sizes[0] + sizes[1]
	raw := map[string]any{"path": filepath.Join(dir, "*.csv")}

	t.Run("from the start", func(t *testing.T) {
		src := stagetest.NewSource(t, "file", raw, stages.Info{})
		if done, tot := progressOf(t, src); done != 0 || tot != total {
			t.Fatalf("before reading: %d/%d, want 0/%d", done, tot, total)
		}
		readN(t, src, 5000, total)
		if done, _ := progressOf(t, src); done <= sizes[0] || done >= total {
			t.Fatalf("in the second file: done %d, want between %d and %d", done, sizes[0], total)
		}
		readToEnd(t, src, total)
	})

	t.Run("resumed", func(t *testing.T) {
		for _, n := range []int{1000, 5000} { // in the first file, in the second
			first := stagetest.NewSource(t, "file", raw, stages.Info{})
			readN(t, first, n, total)
			cp, err := first.(stages.Resumable).Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			_ = first.Close(context.Background())
			var at fileCheckpoint
			if err := json.Unmarshal(cp, &at); err != nil {
				t.Fatal(err)
			}
			base := int64(0)
			if at.File == filepath.Join(dir, "b.csv") {
				base = sizes[0]
			}

			src := stagetest.NewSource(t, "file", raw, stages.Info{})
			if err := src.(stages.Resumable).Resume(cp); err != nil {
				t.Fatal(err)
			}
			if done, tot := progressOf(t, src); done != base+at.Offset || tot != total {
				t.Fatalf("after %d records, resumed: %d/%d, want %d/%d", n, done, tot, base+at.Offset, total)
			}
			readN(t, src, 1, total)
			if done, _ := progressOf(t, src); done <= base+at.Offset {
				t.Fatalf("after %d records, resumed and read one more: done %d, want more than %d", n, done, base+at.Offset)
			}
			readToEnd(t, src, total)
		}
	})

	t.Run("resumed after the last file", func(t *testing.T) {
		src := stagetest.NewSource(t, "file", raw, stages.Info{})
		if err := src.(stages.Resumable).Resume([]byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		readToEnd(t, src, total)
	})

	t.Run("resumed with an encoding", func(t *testing.T) {
		path := stagetest.WriteFile(t, t.TempDir(), "in.txt", "caf\xe9\n"+strings.Repeat("line\n", 10))
		latin := map[string]any{"path": path, "encoding": "latin1"}
		first := stagetest.NewSource(t, "file", latin, stages.Info{})
		readN(t, first, 3, 55)
		cp, err := first.(stages.Resumable).Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		src := stagetest.NewSource(t, "file", latin, stages.Info{})
		if err := src.(stages.Resumable).Resume(cp); err != nil {
			t.Fatal(err)
		}
		readToEnd(t, src, 55)
	})
}

func TestFileSourceProgressUnknownTotal(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "in.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	src := stagetest.NewSource(t, "file", map[string]any{"path": fifo}, stages.Info{})
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return // the test fails on reading
		}
		_, _ = io.WriteString(w, "1\n2\n")
		_ = w.Close()
	}()
	got := stagetest.Payloads(t, src)
	if len(got) != 2 {
		t.Fatalf("got %q, want 2 records", got)
	}
	if done, total := progressOf(t, src); done != 4 || total != -1 {
		t.Fatalf("progress %d/%d, want 4/-1", done, total)
	}
}
