package runner_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// execConformanceScript is the command of the exec case: a shell loop
// that answers each line by what it holds, or fails on it.
const execConformanceScript = `while IFS= read -r l; do
  case "$l" in
    *skip*) echo null ;;
    *many*) printf '[%s,%s]\n' "$l" "$l" ;;
    *garbage*) echo 'this is not json' ;;
    *scalar*) echo 42 ;;
    *reject*) echo '"no good"' ;;
    *die*) echo 'dying on purpose' >&2; exit 3 ;;
    '{'*) printf '%s\n' "$l" ;;
    *) printf 'not json: %s\n' "$l" ;;
  esac
done`

// Conformance case of the exec transform, run with sh. A record the
// command answers with something other than records, and one it dies on
// (max_deliver is 1 in the suite), are dead letters; the command is
// started again for the records after (not json comes after die).
func init() {
	conformanceCases = append(conformanceCases,
		conformanceCase{stages.RoleTransform, "exec", func(t *testing.T, e *conformanceEnv) conformanceStage {
			script := writeConformanceFile(t, e.dir, "answer.sh", execConformanceScript)
			return conformanceStage{
				with: `{command: sh, args: ['` + script + `'], restart_backoff_min: 1ms, close_timeout: 5s}`,
				good: []string{`{"n": 1}`, `{"many": 2}`, `{"skip": 3}`},
				bad:  []string{`{"garbage": 1}`, `{"scalar": 1}`, `{"reject": 1}`, `{"die": 1}`, `not json`},
				check: func(t *testing.T, got []string) {
					// The elements of an array are re-encoded; an object
					// keeps the command's bytes.
					if want := []string{`{"many":2}`, `{"many":2}`, `{"n": 1}`}; !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
					var reasons []string
					for _, m := range natstest.StreamMessages(t, e.nc, schema.DLQStreamName("conformance")) {
						reasons = append(reasons, string(m.Data)+" -> "+m.Header.Get(stages.HeaderError))
					}
					slices.Sort(reasons)
					want := []string{
						`not json -> exec: command "sh" answered "not json: not json": not JSON (invalid character 'o' in literal null (expecting 'u'))`,
						`{"die": 1} -> exec: command "sh" exited before answering (exit status 3); it last wrote to stderr: "dying on purpose"`,
						`{"garbage": 1} -> exec: command "sh" answered "this is not json": not JSON (invalid character 'h' in literal true (expecting 'r'))`,
						`{"reject": 1} -> exec: command "sh" rejected the record: "no good"`,
						`{"scalar": 1} -> exec: command "sh" answered "42": a JSON number, not an object, an array of objects or null`,
					}
					if !slices.Equal(reasons, want) {
						t.Errorf("dead letters:\n%s\nwant:\n%s", strings.Join(reasons, "\n"), strings.Join(want, "\n"))
					}
				},
			}
		}},
	)
}
