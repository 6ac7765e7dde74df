package pipetest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/pipetest"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages/builtin"
)

// writeTest writes a test file for the pipeline testdata/PIPELINE in a
// temporary directory and returns its path.
func writeTest(t *testing.T, pipelineFile, body string) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("testdata", pipelineFile))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "case_test.yaml")
	if err := os.WriteFile(path, []byte("pipeline: "+abs+"\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// run loads and runs the test file at path.
func run(t *testing.T, path string) (*pipetest.Result, error) {
	t.Helper()
	tf, err := pipetest.Load(path)
	if err != nil {
		return nil, err
	}
	return pipetest.Run(context.Background(), tf, pipetest.Options{Registry: builtin.NewRegistry()})
}

// caseResult returns the result of the case named name.
func caseResult(t *testing.T, res *pipetest.Result, name string) pipetest.CaseResult {
	t.Helper()
	for _, c := range res.Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %q in the result", name)
	return pipetest.CaseResult{}
}

func TestRunOrders(t *testing.T) {
	out := t.TempDir()
	path := writeTest(t, "orders.yaml", `env: {OUT: `+out+`}
tests:
  - name: routes
    input:
      stage: read
      records:
        - {id: "1", amount: "150"}
        - {id: "2", amount: "5.50"}
        - {id: "3", amount: "100.0"}
    expect:
      clean:
        - {id: 1, amount: 150}
        - {id: 2, amount: 5.5}
        - {id: 3, amount: 100}
      route.big:
        - {id: 3, amount: 100}
        - {id: 1, amount: 150.0}
      write-small:
        - {id: 2, amount: 5.5}

  - name: input in the middle
    input:
      stage: clean
      records:
        - {id: 7, amount: 700}
    expect:
      write-big: [{id: 7, amount: 700}]
      write-small: []

  - name: wrong
    input:
      stage: read
      records:
        - {id: "4", amount: "40"}
    expect:
      write-small: [{id: 4, amount: 41}]

  - name: dead letters by count and by error
    input:
      stage: read
      records:
        - {id: "5", amount: "x"}
        - {id: "6", amount: "y"}
        - {id: "z", amount: "1"}
    dead_letters:
      clean:
        - {error: float}
        - {error: 'int(z)', record: {id: "z", amount: "1"}}
        - {error: float, record: {id: "6", amount: "y"}}

  - name: dead letters counted
    input:
      stage: read
      records: [{id: "5", amount: "x"}]
    dead_letters: {clean: 1}

  - name: dead letters miscounted
    input:
      stage: read
      records: [{id: "5", amount: "x"}]
    dead_letters: {clean: 2}

  - name: dead letter not expected
    input:
      stage: read
      records: [{id: "5", amount: "x"}]

  - name: dead letter error not matched
    input:
      stage: read
      records: [{id: "5", amount: "x"}]
    dead_letters:
      clean: [{error: "no such text"}]
`)
	res, err := run(t, path)
	if err != nil {
		t.Fatal(err)
	}
	passes := map[string]bool{
		"routes": true, "input in the middle": true, "wrong": false,
		"dead letters by count and by error": true, "dead letters counted": true,
		"dead letters miscounted": false, "dead letter not expected": false,
		"dead letter error not matched": false,
	}
	for name, pass := range passes {
		c := caseResult(t, res, name)
		if c.Err != nil {
			t.Errorf("%s: %v", name, c.Err)
		}
		if c.Passed() != pass {
			t.Errorf("%s: passed %v, want %v; failures:\n%s", name, c.Passed(), pass, strings.Join(c.Failures, "\n"))
		}
	}
	if got := res.Failed(); got != 4 {
		t.Errorf("Failed() = %d, want 4", got)
	}
	diffs := map[string][]string{
		"wrong":                         {":37:7: expect.write-small: 1 record(s) expected, 1 got", `  - {"amount":41,"id":4}`, `  + {"amount":40,"id":4}`},
		"dead letters miscounted":       {"dead_letters.clean: 2 expected, 1 got", `  + clean: `, `record {"amount":"x","id":"5"}`},
		"dead letter not expected":      {"1 unexpected dead letter(s)", `+ clean: `},
		"dead letter error not matched": {`  - error containing "no such text"`, `  + clean: `},
	}
	for name, wants := range diffs {
		text := strings.Join(caseResult(t, res, name).Failures, "\n")
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s: failures do not contain %q:\n%s", name, want, text)
			}
		}
	}
	if entries, err := os.ReadDir(out); err != nil || len(entries) != 0 {
		t.Errorf("the file sink wrote in %s: %v, %v", out, entries, err)
	}
}

func TestRunWindow(t *testing.T) {
	path := writeTest(t, "counts.yaml", `tests:
  - name: minutes
    input:
      stage: in
      messages:
        - {record: {user: a}, event_time: "2026-01-01T00:00:10Z"}
        - {record: {user: b}, event_time: "2026-01-01T00:00:20Z"}
        - {record: {user: a}, event_time: 1767225630}
        - {record: {user: a}, event_time: "2026-01-01T00:01:05Z"}
    expect:
      count:
        - {key: a, n: 2, window_start: "2026-01-01T00:00:00Z", window_end: "2026-01-01T00:01:00Z"}
        - {key: b, n: 1, window_start: "2026-01-01T00:00:00Z", window_end: "2026-01-01T00:01:00Z"}
        - {key: a, n: 1, window_start: "2026-01-01T00:01:00Z", window_end: "2026-01-01T00:02:00Z"}
      out:
        - {key: a, n: 2, window_start: "2026-01-01T00:00:00Z", window_end: "2026-01-01T00:01:00Z"}
        - {key: b, n: 1, window_start: "2026-01-01T00:00:00Z", window_end: "2026-01-01T00:01:00Z"}
        - {key: a, n: 1, window_start: "2026-01-01T00:01:00Z", window_end: "2026-01-01T00:02:00Z"}
`)
	res, err := run(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Cases[0]; !c.Passed() {
		t.Fatalf("window case failed: %v\n%s", c.Err, strings.Join(c.Failures, "\n"))
	}
}

func TestRunProblems(t *testing.T) {
	tests := []struct {
		name, pipeline, body string
		want                 []string
	}{
		{
			name:     "names what the pipeline has not",
			pipeline: "orders.yaml",
			body: `env: {OUT: /tmp}
tests:
  - name: c
    input:
      stage: nope
      records: []
    expect:
      route: []
      route.huge: []
      write-big.x: []
      missing: []
    dead_letters: {ghost: 1}
`,
			want: []string{
				`:6:14: test "c": input.stage: pipeline orders has no stage "nope"`,
				`:9:7: test "c": expect.route: stage "route" sends everything on its routes`,
				`:10:7: test "c": expect.route.huge: stage "route" has no route "huge"`,
				`:11:7: test "c": expect.write-big.x: "write-big" is a sink`,
				`:12:7: test "c": expect.missing: pipeline orders has no stage "missing"`,
				`:13:20: test "c": dead_letters.ghost: pipeline orders has no stage "ghost"`,
			},
		},
		{
			name:     "a sink as input",
			pipeline: "orders.yaml",
			body: `env: {OUT: /tmp}
tests:
  - name: c
    input: {stage: write-big, records: []}
`,
			want: []string{`:5:20: test "c": input.stage: "write-big" is a sink`},
		},
		{
			name:     "the pipeline's own problems",
			pipeline: "orders.yaml",
			body: `tests:
  - name: c
    input: {stage: read, records: []}
`,
			want: []string{`orders.yaml:18:18: undefined variable "OUT"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OUT", "")
			os.Unsetenv("OUT")
			_, err := run(t, writeTest(t, tt.pipeline, tt.body))
			var problems pipeline.Problems
			if !errors.As(err, &problems) {
				t.Fatalf("err = %v, want problems", err)
			}
			text := problems.Error()
			for _, want := range tt.want {
				if !strings.Contains(text, want) {
					t.Errorf("problems do not contain %q:\n%s", want, text)
				}
			}
			if len(problems) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(problems), len(tt.want), text)
			}
		})
	}
}
