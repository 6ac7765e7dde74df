package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// idMsgs returns messages whose payload is {"id":"<id>"} and whose
// Nats-Msg-Id is id; an id ending in "*" (not part of it) is marked as a
// possible copy.
func idMsgs(ids ...string) []*stages.Message {
	out := make([]*stages.Message, len(ids))
	for i, id := range ids {
		id, maybeCopy := strings.CutSuffix(id, "*")
		out[i] = stages.NewMessage([]byte(`{"id":"` + id + `"}`))
		out[i].Header = stages.Header{stages.HeaderMsgID: []string{id}}
		if maybeCopy {
			out[i].Header[stages.HeaderRedelivered] = []string{"1"}
		}
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
			name:  "a possible copy no longer in memory is found in the journal",
			info:  stages.Info{Run: 1, Resumed: true, DedupWindow: time.Nanosecond},
			write: [][]string{{"d"}, {"e"}, {"a*", "f", "b*", "g*"}},
			want:  lines("a", "b", "c", "d", "e", "f", "g"),
		},
		{
			name:  "an original that comes after its copy is left out",
			info:  stages.Info{Run: 1, Resumed: true, DedupWindow: time.Nanosecond},
			write: [][]string{{"x*"}, {"d"}, {"e"}, {"x", "f"}},
			want:  lines("a", "b", "c", "x", "d", "e", "f"),
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

func TestJournalForgets(t *testing.T) {
	// Each entry is written at an offset from t0 with one ID; kept lists
	// the IDs remembered after the last.
	type entry struct {
		at time.Duration
		id string
	}
	tests := []struct {
		name    string
		window  time.Duration
		entries []entry
		kept    []string
	}{
		{
			name:    "the window moves with steady writing",
			window:  2 * time.Second,
			entries: []entry{{0, "a"}, {time.Second, "b"}, {2 * time.Second, "c"}, {3 * time.Second, "d"}},
			kept:    []string{"b", "c", "d"},
		},
		{
			name:   "an outage longer than the window adds at most a second",
			window: 2 * time.Second,
			entries: []entry{{0, "a"}, {500 * time.Millisecond, "b"},
				{10 * time.Minute, "c"}, {10*time.Minute + 500*time.Millisecond, "d"}},
			kept: []string{"a", "b", "c", "d"},
		},
		{
			name:    "a clock that went back adds nothing",
			window:  time.Second,
			entries: []entry{{10 * time.Second, "a"}, {0, "b"}, {500 * time.Millisecond, "c"}},
			kept:    []string{"a", "b", "c"},
		},
	}
	t0 := time.Unix(1_700_000_000, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, _, err := openJournal(filepath.Join(t.TempDir(), "out.jsonl"), tt.window)
			if err != nil {
				t.Fatal(err)
			}
			defer j.close()
			for i, e := range tt.entries {
				j.add(journalEntry{run: 1, size: int64(i), at: t0.Add(e.at), ids: []digest{j.digest(e.id)}})
			}
			var kept []string
			for _, e := range tt.entries {
				if j.has(j.digest(e.id)) {
					kept = append(kept, e.id)
				}
			}
			if !slices.Equal(kept, tt.kept) {
				t.Fatalf("kept %v, want %v", kept, tt.kept)
			}
		})
	}
}

// TestJournalLookup: what fell out of memory is found in the file, also
// after the journal is opened again.
func TestJournalLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	j, _, err := openJournal(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	j.run = 1
	t0 := time.Unix(1_700_000_000, 0)
	for i, id := range []string{"old", "mid", "new"} {
		j.now = func() time.Time { return t0.Add(time.Duration(i) * time.Second) }
		if err := j.record(int64(10*(i+1)), []digest{j.digest(id)}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(j *journal) {
		t.Helper()
		if j.has(j.digest("old")) || !j.has(j.digest("mid")) || !j.has(j.digest("new")) {
			t.Fatalf("in memory: old %v mid %v new %v, want only mid and new", j.has(j.digest("old")), j.has(j.digest("mid")), j.has(j.digest("new")))
		}
		want := map[digest]struct{}{j.digest("old"): {}, j.digest("never"): {}}
		if err := j.lookup(want); err != nil {
			t.Fatal(err)
		}
		if _, ok := want[j.digest("never")]; len(want) != 1 || !ok {
			t.Fatalf("lookup left %d digests, want only the one never written", len(want))
		}
	}
	check(j)
	j.close()

	j, found, err := openJournal(path, time.Second)
	if err != nil || !found {
		t.Fatalf("reopen: found %v, %v", found, err)
	}
	defer j.close()
	if j.last.size != 30 || j.last.run != 1 {
		t.Fatalf("last = %+v, want size 30 of run 1", j.last)
	}
	check(j)
}

// TestJournalRestartAddsNoTime: the time a sink was down is not writing
// time, however long it was.
func TestJournalRestartAddsNoTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	t0 := time.Unix(1_700_000_000, 0)
	j, _, err := openJournal(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	j.run, j.now = 1, func() time.Time { return t0 }
	if err := j.record(10, []digest{j.digest("before")}); err != nil {
		t.Fatal(err)
	}
	j.close()

	j, _, err = openJournal(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	j.run = 1
	for _, at := range []time.Duration{10 * time.Minute, 10*time.Minute + 900*time.Millisecond} {
		j.now = func() time.Time { return t0.Add(at) }
		if err := j.record(20, []digest{j.digest(at.String())}); err != nil {
			t.Fatal(err)
		}
	}
	if !j.has(j.digest("before")) {
		t.Fatal("the entry before the restart was forgotten after 0.9s of writing")
	}
}
