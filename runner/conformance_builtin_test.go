package runner_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// Conformance cases of the first built-in types: generate, file and stdin
// sources, map, filter and split transforms, stdout, file and discard
// sinks.
func init() {
	conformanceCases = append(conformanceCases,
		conformanceCase{stages.RoleSource, "generate", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{with: `{count: 5}`, want: 5}
		}},
		conformanceCase{stages.RoleSource, "file", func(t *testing.T, e *conformanceEnv) conformanceStage {
			// A CSV row of the wrong width cannot be read as a record.
			path := writeConformanceFile(t, e.dir, "in.csv", "n,m\n1,2\n3\n4,5\n")
			return conformanceStage{with: `{path: '` + path + `'}`, want: 2, wantBad: 1}
		}},
		conformanceCase{stages.RoleSource, "stdin", func(t *testing.T, e *conformanceEnv) conformanceStage {
			e.stdin = strings.NewReader("n,m\n1,2\n3,4\n5,6,7\n8,9\n")
			return conformanceStage{with: `{format: csv}`, want: 3, wantBad: 1}
		}},
		conformanceCase{stages.RoleTransform, "map", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				with: `{expr: '{"twice": n * 2}'}`,
				good: []string{`{"n": 1}`, `{"n": 2}`},
				bad:  []string{`{"n": "x"}`, `not json`},
				check: func(t *testing.T, got []string) {
					want := []string{`{"twice":2}`, `{"twice":4}`}
					if !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleTransform, "filter", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				with: `{expr: 'n > 1'}`,
				good: []string{`{"n": 1}`, `{"n": 2}`},
				bad:  []string{`{"n": "x"}`, `[]`},
				check: func(t *testing.T, got []string) {
					if want := []string{`{"n": 2}`}; !slices.Equal(got, want) {
						t.Errorf("got %q, want %q", got, want)
					}
				},
			}
		}},
		conformanceCase{stages.RoleTransform, "split", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				with: `{field: items}`,
				good: []string{`{"items": [1, 2, 3]}`},
				bad:  []string{`{"items": 1}`},
				check: func(t *testing.T, got []string) {
					if len(got) != 3 {
						t.Errorf("got %q, want 3 records", got)
					}
				},
			}
		}},
		conformanceCase{stages.RoleSink, "stdout", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{
				good: []string{`{"n":1}`, `{"n":2}`},
				bad:  []string{`{"n":`},
				check: func(t *testing.T, _ []string) {
					if got := e.out.String(); strings.Count(got, "\n") != 2 || !strings.Contains(got, `{"n":2}`) {
						t.Errorf("stdout: %q", got)
					}
				},
			}
		}},
		conformanceCase{stages.RoleSink, "file", func(t *testing.T, e *conformanceEnv) conformanceStage {
			path := filepath.Join(e.dir, "out.jsonl")
			return conformanceStage{
				with: `{path: '` + path + `'}`,
				good: []string{`{"n":1}`, `{"n":2}`},
				bad:  []string{`nope`},
				check: func(t *testing.T, _ []string) {
					b, err := os.ReadFile(path)
					if err != nil || strings.Count(string(b), "\n") != 2 {
						t.Errorf("file: %q, %v", b, err)
					}
				},
			}
		}},
		conformanceCase{stages.RoleSink, "discard", func(t *testing.T, e *conformanceEnv) conformanceStage {
			return conformanceStage{good: []string{`{"n":1}`, `not even json`}}
		}},
	)
}
