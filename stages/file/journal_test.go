package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// idMsgs returns messages whose payload is {"id":"<id>"} and whose
// Nats-Msg-Id is id.
func idMsgs(ids ...string) []*stages.Message {
	out := make([]*stages.Message, len(ids))
	for i, id := range ids {
		out[i] = stages.NewMessage([]byte(`{"id":"` + id + `"}`))
		out[i].Header = stages.Header{stages.HeaderMsgID: []string{id}}
	}
	return out
}

func lines(ids ...string) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(`{"id":"` + id + `"}` + "\n")
	}
	return b.String()
}

func writeOK(t *testing.T, sk stages.Sink, batch []*stages.Message) {
	t.Helper()
	if err := sk.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

func TestFileSinkDedupe(t *testing.T) {
	run1 := stages.Info{Run: 1}
	resumed1 := stages.Info{Run: 1, Resumed: true}
	tests := []struct {
		name string
		// before runs on the file path after the first sink wrote a, b
		// and c and was closed.
		before func(t *testing.T, path string)
		mode   string
		info   stages.Info // of the second sink
		write  [][]string
		want   string
	}{
		{
			name:  "resumed run skips what the journal has",
			info:  resumed1,
			write: [][]string{{"b", "d", "a", "d"}, {"c", "e"}, {"d", "e", "f"}},
			want:  lines("a", "b", "c", "d", "e", "f"),
		},
		{
			name: "resumed run cuts off a batch written but not recorded",
			before: func(t *testing.T, path string) {
				appendTo(t, path, lines("x", "y")+`{"torn`)
			},
			info:  resumed1,
			write: [][]string{{"x", "c", "y"}},
			want:  lines("a", "b", "c", "x", "y"),
		},
		{
			name: "a torn journal entry is cut off",
			before: func(t *testing.T, path string) {
				appendTo(t, journalPath(path), journalMagic+"\x01\x00\x00")
			},
			info:  resumed1,
			write: [][]string{{"a", "d"}},
			want:  lines("a", "b", "c", "d"),
		},
		{
			name:  "a new run overwrites",
			info:  stages.Info{Run: 2},
			write: [][]string{{"a", "d"}},
			want:  lines("a", "d"),
		},
		{
			name:  "a new run appends and forgets the old run's IDs",
			mode:  modeAppend,
			info:  stages.Info{Run: 2},
			write: [][]string{{"a", "d"}},
			want:  lines("a", "b", "c", "a", "d"),
		},
		{
			name:  "resuming another run is a new run",
			info:  stages.Info{Run: 2, Resumed: true},
			write: [][]string{{"a"}},
			want:  lines("a"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.jsonl")
			raw := map[string]any{"path": path}
			if tt.mode != "" {
				raw["mode"] = tt.mode
			}
			first := stagetest.NewSink(t, "file", raw, run1)
			writeOK(t, first, idMsgs("a", "b"))
			writeOK(t, first, idMsgs("c", "a"))
			if err := first.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if tt.before != nil {
				tt.before(t, path)
			}
			second := stagetest.NewSink(t, "file", raw, tt.info)
			for _, b := range tt.write {
				writeOK(t, second, idMsgs(b...))
			}
			if err := second.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := stagetest.ReadString(t, path); got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestFileSinkDedupeErrors(t *testing.T) {
	t.Run("file shorter than its journal", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.jsonl")
		s := stagetest.Lookup(t, stages.RoleSink, "file")
		params := stagetest.Parse(t, s, map[string]any{"path": path})
		sk, err := s.NewSink(params, stages.Info{Run: 1})
		if err != nil {
			t.Fatal(err)
		}
		writeOK(t, sk, idMsgs("a", "b"))
		sk.Close(context.Background())
		if err := os.Truncate(path, 3); err != nil {
			t.Fatal(err)
		}
		_, err = s.NewSink(params, stages.Info{Run: 1, Resumed: true})
		if err == nil || !stagetest.ContainsAll(err.Error(), path, "cannot resume", "--fresh") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("without dedupe IDs repeat and a resumed run appends", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "out.jsonl")
		raw := map[string]any{"path": path, "dedupe": false}
		sk := stagetest.NewSink(t, "file", raw, stages.Info{Run: 1})
		writeOK(t, sk, idMsgs("a", "a"))
		sk.Close(context.Background())
		sk = stagetest.NewSink(t, "file", raw, stages.Info{Run: 1, Resumed: true})
		writeOK(t, sk, idMsgs("a", "b"))
		if got := stagetest.ReadString(t, path); got != lines("a", "a", "a", "b") {
			t.Fatalf("got %q", got)
		}
		if _, err := os.Stat(journalPath(path)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a journal without dedupe: %v", err)
		}
	})
}

func TestJournalWindowAndCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	j, _, err := openJournal(path, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	j.run = 1
	d := func(id string) digest { return j.digest(id) }
	t0 := time.Unix(1_700_000_000, 0)
	j.add(journalEntry{run: 1, size: 10, at: t0, ids: []digest{d("old")}})
	j.add(journalEntry{run: 1, size: 20, at: t0.Add(30 * time.Second), ids: []digest{d("mid")}})
	if !j.has(d("old")) || !j.has(d("mid")) {
		t.Fatal("entries within the window forgotten")
	}
	j.add(journalEntry{run: 1, size: 30, at: t0.Add(90 * time.Second), ids: []digest{d("new")}})
	if j.has(d("old")) || !j.has(d("mid")) || !j.has(d("new")) {
		t.Fatalf("after the window moved: old %v mid %v new %v", j.has(d("old")), j.has(d("mid")), j.has(d("new")))
	}
	j.now = func() time.Time { return t0.Add(100 * time.Second) }
	if err := j.compact(); err != nil {
		t.Fatal(err)
	}
	if err := j.record(40, []digest{d("last")}); err != nil {
		t.Fatal(err)
	}
	j.close()

	// Reopened: the entries of the window, the last size, nothing else.
	j2, found, err := openJournal(path, time.Hour)
	if err != nil || !found {
		t.Fatalf("reopen: found %v, %v", found, err)
	}
	defer j2.close()
	if j2.last.size != 40 || j2.last.run != 1 || len(j2.entries) != 3 {
		t.Fatalf("last = %+v, %d entries, want size 40 of run 1 and 3 entries", j2.last, len(j2.entries))
	}
	for _, id := range []string{"mid", "new", "last"} {
		if !j2.has(j2.digest(id)) {
			t.Errorf("%s forgotten", id)
		}
	}
	if j2.has(j2.digest("old")) {
		t.Error("old kept through compaction")
	}
}
