package pipetest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline"
)

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string // FILE:LINE:COL: message, FILE left out
	}{
		{"empty", "", []string{": empty file"}},
		{"not yaml", "pipeline: [\n", []string{":1: invalid YAML: did not find expected node content"}},
		{"not a mapping", "- 1\n", []string{":1:1: want a mapping, got a list"}},
		{"missing keys", "env: {}\n", []string{`:1:1: missing required key "pipeline"`, `:1:1: missing required key "tests"`}},
		{"unknown key", "pipeline: p.yaml\ntests: []\nextra: 1\n", []string{":2:8: tests: no test case", `:3:1: unknown key "extra"`}},
		{
			"case problems",
			`pipeline: p.yaml
tests:
  - name: a
    input: {stage: s, records: {x: 1}}
    expect: {s: 1}
    dead_letters: {s: many, t: -1, u: [{error: x, nope: 1}]}
  - input: {records: []}
  - name: a
    input: {stage: s, records: [], messages: []}
  - name: b
    input:
      stage: s
      messages: [{record: {x: 1}, event_time: "yesterday"}, {event_time: 1}]
`,
			[]string{
				`:4:32: test "a": input.records: want a list of records, got a mapping`,
				`:5:17: test "a": expect.s: want a list of records, got "1"`,
				`:6:23: test "a": dead_letters.s: want a count or a list of {error: substring}, got "many"`,
				`:6:32: test "a": dead_letters.t: want a count >= 0`,
				`:6:51: test "a": dead_letters.u[0]: unknown key "nope"`,
				`:7:5: tests[1]: missing required key "name"`,
				`:7:12: tests[1]: input: missing required key "stage"`,
				`:8:5: tests[2]: repeated name "a" (first at line 3)`,
				`:9:36: test "a": input: give records or messages, not both`,
				`:13:47: test "b": input.messages[0].event_time: gave "yesterday"`,
				`:13:61: test "b": input.messages[1]: missing required key "record"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f_test.yaml", []byte(tt.body))
			var problems pipeline.Problems
			if !errors.As(err, &problems) {
				t.Fatalf("err = %v, want problems", err)
			}
			text := problems.Error()
			for _, want := range tt.want {
				if !strings.Contains(text, "f_test.yaml"+want) {
					t.Errorf("problems do not contain %q:\n%s", "f_test.yaml"+want, text)
				}
			}
			if len(problems) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(problems), len(tt.want), text)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tf, err := Parse(filepath.Join("dir", "x_test.yaml"), []byte(`pipeline: p.yaml
env: {A: "1"}
tests:
  - name: one
    input:
      stage: s
      messages:
        - {record: {at: 2026-01-01T00:00:00Z, n: 1.50}, event_time: 1767225600}
    expect:
      t: [{at: 2026-01-01T00:00:00.000Z}]
    dead_letters:
      t: 2
      u: [{error: boom, record: [1]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if tf.Pipeline != filepath.Join("dir", "p.yaml") || tf.Env["A"] != "1" || len(tf.Cases) != 1 {
		t.Fatalf("file = %+v", tf)
	}
	c := tf.Cases[0]
	m := c.Input.Messages[0]
	if got := canonical(m.Record); got != `{"at":"2026-01-01T00:00:00Z","n":1.5}` {
		t.Errorf("record = %s", got)
	}
	if m.EventTime != "2026-01-01T00:00:00Z" {
		t.Errorf("event time = %q", m.EventTime)
	}
	// A timestamp stays the text written.
	if got := canonical(c.Expect[0].Records[0]); got != `{"at":"2026-01-01T00:00:00.000Z"}` {
		t.Errorf("expected record = %s", got)
	}
	dl := c.DeadLetters
	if len(dl) != 2 || dl[0].Count != 2 || dl[1].Count != -1 || dl[1].Matches[0].Error != "boom" || !dl[1].Matches[0].HasRecord {
		t.Errorf("dead letters = %+v", dl)
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b": 1.0, "a": [1e2, 0.5, -0]}`, `{"a":[100,0.5,0],"b":1}`},
		{`{"x": "<&>"}`, `{"x":"<&>"}`},
		{`12345678901234567890`, `12345678901234567890`},
		{`not json`, `"not json"`},
		{`1 2`, `"1 2"`},
	}
	for _, tt := range tests {
		if got := canonicalBytes([]byte(tt.in)); got != tt.want {
			t.Errorf("canonicalBytes(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestMultisetDiff(t *testing.T) {
	missing, extra := multisetDiff([]string{"a", "a", "b"}, []string{"a", "c", "b", "c"})
	if strings.Join(missing, ",") != "a" || strings.Join(extra, ",") != "c,c" {
		t.Errorf("missing %v, extra %v", missing, extra)
	}
}

func TestMatch(t *testing.T) {
	// Greedy would give "a" to the first candidate and leave "ab" none.
	want := []string{"a", "ab"}
	got := []string{"ab", "a"}
	to := match(len(want), len(got), func(i, j int) bool {
		return strings.HasPrefix(got[j], want[i]) && len(got[j]) == len(want[i]) || want[i] == "a"
	})
	if to[0] < 0 || to[1] < 0 || to[0] == to[1] {
		t.Errorf("match = %v", to)
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a_test.yaml", "b.yaml", "sub/c_test.yaml", "sub/deep/d_test.yaml", ".hidden/e_test.yaml", "testdata/f_test.yaml"} {
		path := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{dir}, []string{"a_test.yaml"}},
		{[]string{dir + "/..."}, []string{"a_test.yaml", "sub/c_test.yaml", "sub/deep/d_test.yaml"}},
		{[]string{filepath.Join(dir, "b.yaml"), dir + "/sub/...", dir + "/sub/deep"}, []string{"b.yaml", "sub/c_test.yaml", "sub/deep/d_test.yaml"}},
	}
	for _, tt := range tests {
		got, err := Find(tt.args)
		if err != nil {
			t.Fatalf("Find(%v): %v", tt.args, err)
		}
		for i := range got {
			got[i], _ = filepath.Rel(dir, got[i])
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("Find(%v) = %v, want %v", tt.args, got, tt.want)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Find([]string{filepath.Join(dir, "empty")}); !errors.Is(err, ErrNoTests) {
		t.Errorf("a directory without tests: err = %v, want ErrNoTests", err)
	}
	if _, err := Find([]string{filepath.Join(dir, "nope")}); err == nil {
		t.Error("a path that does not exist: no error")
	}
}
