package exec

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// What a record's Process gives, in TestExecOutage.
const (
	execOK      = "ok"      // outputs
	execRecord  = "record"  // a retryable error, not an outage
	execOutage  = "outage"  // an outage
	execEither  = "either"  // a retryable error or an outage
	execBreak   = "break"   // not a record: the command breaks (on each record, as how says)
	execRepair  = "repair"  // not a record: the command works again
	execUnlink  = "unlink"  // not a record: the command's file goes
	execRestore = "restore" // not a record: the command's file comes back
)

// TestExecOutage checks the rule that tells a record the command fails
// on from a command out of order: a failure is the record's, unless the
// command failed on a different record (or between records) before it
// without answering one in between; then failures are outages until the
// command answers again.
func TestExecOutage(t *testing.T) {
	tests := []struct {
		name  string
		mode  string
		extra map[string]any
		how   string // how a broken command fails: "die" or "sleep"
		steps []string
	}{
		{
			name:  "dies on one record and answers the others",
			mode:  "serve",
			steps: []string{`{"n":1}`, execOK, `{"do":"die"}`, execRecord, `{"do":"die"}`, execRecord, `{"n":2}`, execOK, `{"do":"die"}`, execRecord, `{"n":3}`, execOK},
		},
		{
			name: "dies on every record",
			mode: "serve",
			how:  "die",
			steps: []string{`{"n":1}`, execOK, execBreak, `{"n":2}`, execRecord, `{"n":3}`, execOutage, `{"n":3}`, execOutage,
				`{"n":2}`, execOutage, execRepair, `{"n":3}`, execOK, execBreak, `{"n":4}`, execRecord},
		},
		{
			name:  "answers nothing in time, on every record",
			mode:  "serve",
			extra: map[string]any{"timeout": "1s"},
			how:   "sleep",
			steps: []string{`{"n":1}`, execOK, execBreak, `{"n":2}`, execRecord, `{"n":3}`, execOutage, execRepair, `{"n":3}`, execOK},
		},
		{
			name: "cannot be started again",
			mode: "serve",
			how:  "die",
			steps: []string{`{"n":1}`, execOK, execBreak, execUnlink, `{"n":2}`, execRecord, `{"n":2}`, execOutage,
				execRepair, execRestore, `{"n":2}`, execOK},
		},
		{
			name:  "exits at start",
			mode:  "exit",
			steps: []string{`{"n":1}`, execEither, `{"n":2}`, execOutage},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			flag := filepath.Join(dir, "broken")
			command := filepath.Join(dir, "command")
			if err := os.Symlink(os.Args[0], command); err != nil {
				t.Fatal(err)
			}
			extra := map[string]any{"command": command, "env": map[string]any{"SLUICE_EXEC_BROKEN": flag}}
			for k, v := range tt.extra {
				extra[k] = v
			}
			tr := newExec(t, execParams(t, tt.mode, extra), stages.Info{})
			for i := 0; i < len(tt.steps); i++ {
				step := tt.steps[i]
				var err error
				switch step {
				case execBreak:
					err = os.WriteFile(flag, []byte(tt.how), 0o644)
				case execRepair:
					err = os.Remove(flag)
				case execUnlink:
					err = os.Remove(command)
				case execRestore:
					err = os.Symlink(os.Args[0], command)
				}
				if err != nil {
					t.Fatal(err)
				}
				switch step {
				case execBreak, execRepair, execUnlink, execRestore:
					continue
				}
				i++
				want := tt.steps[i]
				_, err = tr.Process(context.Background(), stages.NewMessage([]byte(step)), nil)
				got := execOK
				switch {
				case err == nil:
				case stages.IsPermanent(err):
					got = "permanent"
				case stages.IsOutage(err):
					got = execOutage
				default:
					got = execRecord
				}
				if got != want && (want != execEither || got == execOK || got == "permanent") {
					t.Fatalf("step %d, record %s: got %s (%v), want %s", i, step, got, err, want)
				}
				t.Logf("record %s: %s: %v", step, got, err)
			}
		})
	}
}
