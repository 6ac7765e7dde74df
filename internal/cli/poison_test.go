package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/dlq"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// TestPoisonInput feeds sluice run bad input: each bad record becomes a
// dead letter with its reason while the good ones flow; a missing file or
// a directory where a file is expected stops the run at once with an error
// that names it.
func TestPoisonInput(t *testing.T) {
	huge := `{"id": 9, "blob": "` + strings.Repeat("x", 10<<20) + `"}`
	tests := []struct {
		name     string
		file     string // the input file's name; "" for none
		content  string
		path     string // the source's path, relative to the test dir, and any further parameters
		exit     int
		stderr   []string // each must appear on stderr
		want     []string // the output, sorted
		dead     []string // "stage: reason" of each dead letter, sorted
		truncate bool     // the dead letter's payload was cut
	}{
		{
			name:    "json lines",
			file:    "in.jsonl",
			content: "{\"id\": 1}\n{\"id\": 2, \"bad\": \"\xff\xfe\"}\n{\"id\": 3}\n{\"id\": 4, \"cut\": \n{\"id\": 5}\n" + huge + "\n{\"id\": 6}\n",
			path:    "in.jsonl",
			want:    []string{`{"id":1,"ok":true}`, `{"id":3,"ok":true}`, `{"id":5,"ok":true}`, `{"id":6,"ok":true}`},
			dead: []string{
				"mark: invalid JSON: unexpected end of JSON input (at byte 17)",
				"read: file in.jsonl line 2: not valid UTF-8 at byte 18 of the line (0xff); set encoding: latin1 if the file is Latin-1 (or windows-1252, utf-16)",
				fmt.Sprintf("read: record of %d bytes is too large for NATS", len(huge)),
			},
			truncate: true,
		},
		{
			name:    "csv with a short row",
			file:    "in.csv",
			content: "id,name\n1,a\n2\n3,c\n",
			path:    "in.csv",
			want:    []string{`{"id":"1","name":"a","ok":true}`, `{"id":"3","name":"c","ok":true}`},
			dead:    []string{"read: file in.csv line 3: row has 1 fields, header has 2"},
		},
		{
			name:    "csv with a Latin-1 byte",
			file:    "in.csv",
			content: "id,name\n1,a\n2,caf\xe9\n3,c\n",
			path:    "in.csv",
			want:    []string{`{"id":"1","name":"a","ok":true}`, `{"id":"3","name":"c","ok":true}`},
			dead:    []string{"read: file in.csv line 3: not valid UTF-8 at byte 5 of the line (0xe9); set encoding: latin1 if the file is Latin-1 (or windows-1252, utf-16)"},
		},
		{
			name:    "csv read as Latin-1",
			file:    "in.csv",
			content: "id,name\n1,a\n2,caf\xe9\n",
			path:    "in.csv, encoding: latin1",
			want:    []string{`{"id":"1","name":"a","ok":true}`, `{"id":"2","name":"café","ok":true}`},
		},
		{name: "empty file", file: "in.jsonl", path: "in.jsonl"},
		{name: "missing file", path: "nope.jsonl", exit: ExitFailure, stderr: []string{"nope.jsonl", "no such file or directory"}},
		{name: "a directory", file: "dir/x.jsonl", content: "{}\n", path: "dir", exit: ExitFailure, stderr: []string{"dir: is a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := inEmptyDir(t)
			if tt.file != "" {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, tt.file)), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, dir, tt.file, tt.content)
			}
			p := writeFile(t, dir, "p.yaml", `name: poison
stages:
  - name: read
    source: file
    with: {path: `+tt.path+`}
  - name: mark
    transform: map
    with: {expr: 'merge($env, {"ok": true})'}
  - name: out
    sink: file
    with: {path: out.jsonl}
`)
			store := filepath.Join(dir, "store")
			code, _, stderr := sluice(t, "run", "--store-dir", store, p)
			if code != tt.exit {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.exit, stderr)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr does not say %q:\n%s", s, stderr)
				}
			}
			if tt.exit != ExitOK {
				return
			}
			got := []string{}
			if b, err := os.ReadFile(filepath.Join(dir, "out.jsonl")); err == nil && len(b) > 0 {
				got = readLines(t, filepath.Join(dir, "out.jsonl"))
			}
			if !slices.Equal(got, append([]string{}, tt.want...)) {
				t.Errorf("output %q, want %q", got, tt.want)
			}
			for _, line := range got {
				if strings.Contains(line, "\ufffd") {
					t.Errorf("output %q holds U+FFFD: bytes were altered", line)
				}
			}
			nc := natstest.OpenStore(t, store)
			dead := []string{}
			truncated := false
			for _, m := range natstest.StreamMessages(t, nc, schema.DLQStreamName("poison")) {
				reason := m.Header.Get(stages.HeaderError)
				for _, want := range tt.dead {
					if _, prefix, _ := strings.Cut(want, ": "); strings.HasPrefix(reason, prefix) {
						reason = prefix
					}
				}
				dead = append(dead, m.Header.Get(stages.HeaderStage)+": "+reason)
				truncated = truncated || m.Header.Get(stages.HeaderTruncated) != ""
			}
			slices.Sort(dead)
			if !slices.Equal(dead, append([]string{}, tt.dead...)) {
				t.Errorf("dead letters %q, want %q", dead, tt.dead)
			}
			if truncated != tt.truncate {
				t.Errorf("a truncated dead letter: %v, want %v", truncated, tt.truncate)
			}
			// A payload too large for NATS is kept whole in the object
			// store.
			all, err := dlq.List(t.Context(), nc, "poison", dlq.Filter{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, dl := range all {
				if !dl.Truncated {
					continue
				}
				whole, err := dlq.Whole(t.Context(), nc, dl)
				if size := dl.Header.Get(stages.HeaderTruncated); err != nil || dl.Object == "" || strconv.Itoa(len(whole)) != size || !bytes.HasPrefix(whole, dl.Data) {
					t.Errorf("dead letter %d of %s bytes: object %q, whole payload of %d bytes (%v)", dl.Seq, size, dl.Object, len(whole), err)
				}
			}
			// Purged, the dead letters take their whole payloads with them.
			if _, err := dlq.Purge(t.Context(), nc, "poison", dlq.Filter{}); err != nil {
				t.Fatal(err)
			}
			if tt.truncate {
				js, _ := jetstream.New(nc)
				obs, err := js.ObjectStore(t.Context(), schema.OversizedBucket("poison"))
				if err != nil {
					t.Fatal(err)
				}
				if infos, err := obs.List(t.Context()); !errors.Is(err, jetstream.ErrNoObjectsFound) {
					t.Errorf("after the purge the object store holds %d payloads (%v)", len(infos), err)
				}
			}
		})
	}
}
