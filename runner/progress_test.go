package runner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runner"
)

// TestJobSourceProgress: Job.SourceProgress reports how far a file
// source has read, of the file's size, from when the run has started to
// after it has ended; stages that are no source, or a source that cannot
// tell, report nothing.
func TestJobSourceProgress(t *testing.T) {
	e := newEnv(t)
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "{\"n\":%d}\n", i)
	}
	path := filepath.Join(e.dir, "in.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	size := int64(b.Len())
	p := e.parse(t, `name: progress
stages:
  - {name: read, source: file, with: {path: $DIR/in.jsonl}}
  - {name: gen, source: generate, with: {count: 5}}
  - {name: out, sink: discard, from: [read, gen]}
`)
	type report struct {
		done, total int64
		ok          bool
	}
	var job *runner.Job
	var atStart map[string]report
	_, err := runner.Run(context.Background(), e.nc, p, runner.Options{Registry: e.reg, Started: func(j *runner.Job) {
		job = j
		atStart = make(map[string]report)
		for _, name := range []string{"read", "gen", "out", "nope"} {
			done, total, ok := j.SourceProgress(name)
			atStart[name] = report{done, total, ok}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if r := atStart["read"]; !r.ok || r.total != size || r.done < 0 || r.done > size {
		t.Errorf("file source when started: %+v, want ok and done <= total = %d", r, size)
	}
	for _, name := range []string{"gen", "out", "nope"} {
		if r := atStart[name]; r.ok {
			t.Errorf("%s when started: %+v, want not ok", name, r)
		}
	}
	if done, total, ok := job.SourceProgress("read"); !ok || done != size || total != size {
		t.Errorf("file source after the run: %d/%d ok %v, want %d/%d ok", done, total, ok, size, size)
	}
}
