package cli

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testPipeline = `name: shop
settings: {max_out_of_orderness: 0s}
stages:
  - name: read
    source: file
    with: {path: /nonexistent/orders.csv, format: csv}
    event_time: at
    key: customer
    partitions: 2
  - name: clean
    transform: map
    with: {expr: '{"id": int(id), "customer": upper(customer), "amount": float(amount), "at": at}'}
  - name: big
    transform: filter
    with: {expr: 'amount >= 100'}
  - name: write
    sink: file
    with: {path: /nonexistent/big.jsonl}
  - name: per-minute
    from: read
    transform: window
    with: {type: tumbling, size: 1m, key: customer, aggregate: {n: count}}
  - name: print
    sink: stdout
`

const testCases = `pipeline: pipeline.yaml
tests:
  - name: big orders are kept and cleaned
    input:
      stage: read
      records:
        - {id: "1", customer: ann, amount: "150", at: "2026-01-01T00:00:05Z"}
        - {id: "2", customer: bob, amount: "15", at: "2026-01-01T00:00:06Z"}
    expect:
      big:
        - {id: 1, customer: ANN, amount: 150, at: "2026-01-01T00:00:05Z"}
      write:
        - {id: 1, customer: ANN, amount: 150, at: "2026-01-01T00:00:05Z"}
  - name: bad amounts are dead letters
    input:
      stage: read
      records:
        - {id: "3", customer: cy, amount: "x", at: "2026-01-01T00:00:05Z"}
        - {id: "4", customer: cy, amount: "y", at: "2026-01-01T00:00:05Z"}
    expect:
      write: []
    dead_letters:
      clean: 2
  - name: bad amounts, by error
    input:
      stage: read
      records:
        - {id: "3", customer: cy, amount: "x", at: "2026-01-01T00:00:05Z"}
    dead_letters:
      clean: [{error: "float(x)"}]
  - name: orders are counted per customer and minute
    input:
      stage: read
      records:
        - {id: "1", customer: ann, amount: "1", at: "2026-01-01T00:00:05Z"}
        - {id: "2", customer: ann, amount: "1", at: "2026-01-01T00:00:50Z"}
        - {id: "4", customer: bob, amount: "1", at: "2026-01-01T00:00:30Z"}
        - {id: "3", customer: ann, amount: "1", at: "2026-01-01T00:01:10Z"}
    expect:
      print:
        - {key: ann, n: 2, window_start: "2026-01-01T00:00:00Z", window_end: "2026-01-01T00:01:00Z"}
        - {key: ann, n: 1, window_start: "2026-01-01T00:01:00Z", window_end: "2026-01-01T00:02:00Z"}
        - {key: bob, n: 1, window_start: "2026-01-01T00:00:00Z", window_end: "2026-01-01T00:01:00Z"}
`

// writeTestFiles writes the test pipeline and a test file of cases in a
// new directory, and returns the test file's path.
func writeTestFiles(t *testing.T, cases string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(testPipeline), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pipeline_test.yaml")
	if err := os.WriteFile(path, []byte(cases), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runTest(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var so, se bytes.Buffer
	code = Main(append([]string{"test"}, args...), strings.NewReader(""), &so, &se)
	return code, so.String(), se.String()
}

func TestTestPasses(t *testing.T) {
	path := writeTestFiles(t, testCases)
	junit := filepath.Join(t.TempDir(), "report.xml")
	code, stdout, stderr := runTest(t, "-v", "--junit", junit, filepath.Dir(path)+"/...")
	if code != ExitOK {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"--- PASS: big orders are kept and cleaned",
		"--- PASS: bad amounts are dead letters",
		"--- PASS: bad amounts, by error",
		"--- PASS: orders are counted per customer and minute",
		"ok\t" + path + "\t4 cases",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, stdout)
		}
	}
	report := readJUnit(t, junit)
	if report.Tests != 4 || report.Failures != 0 || report.Errors != 0 || len(report.Suites) != 1 || len(report.Suites[0].Cases) != 4 {
		t.Errorf("junit report = %+v", report)
	}
}

func TestTestFails(t *testing.T) {
	cases := strings.Replace(testCases, "clean: 2", "clean: 1", 1)
	cases = strings.Replace(cases, "{key: bob, n: 1,", "{key: bob, n: 3,", 1)
	path := writeTestFiles(t, cases)
	junit := filepath.Join(t.TempDir(), "report.xml")
	code, stdout, stderr := runTest(t, "--junit", junit, path)
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"--- FAIL: bad amounts are dead letters (" + path + ":14:5)",
		"    " + path + ":23:7: dead_letters.clean: 1 expected, 2 got:",
		`      + clean: `,
		"--- FAIL: orders are counted per customer and minute (" + path + ":31:5)",
		"    " + path + ":40:7: expect.print: 3 record(s) expected, 3 got; 1 missing, 1 unexpected (-expected +got):",
		`      - {"key":"bob","n":3,"window_end":"2026-01-01T00:01:00Z","window_start":"2026-01-01T00:00:00Z"}`,
		`      + {"key":"bob","n":1,"window_end":"2026-01-01T00:01:00Z","window_start":"2026-01-01T00:00:00Z"}`,
		"FAIL\t" + path + "\t2 of 4 cases failed",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "PASS") {
		t.Errorf("passing cases named without -v:\n%s", stdout)
	}
	// --run selects cases: those that pass.
	code, stdout, stderr = runTest(t, "-v", "--run", "^big|by error$", path)
	if code != ExitOK || !strings.Contains(stdout, "ok\t"+path+"\t2 cases") {
		t.Errorf("--run: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	report := readJUnit(t, junit)
	if report.Tests != 4 || report.Failures != 2 {
		t.Fatalf("junit report = %+v", report)
	}
	failed := map[string]string{}
	for _, c := range report.Suites[0].Cases {
		if c.Failure != nil {
			failed[c.Name] = c.Failure.Text
		}
	}
	if !strings.Contains(failed["orders are counted per customer and minute"], `+ {"key":"bob","n":1,`) ||
		!strings.Contains(failed["bad amounts are dead letters"], "1 expected, 2 got") {
		t.Errorf("junit failures = %v", failed)
	}
}

func TestTestMalformed(t *testing.T) {
	good := writeTestFiles(t, testCases)
	bad := writeTestFiles(t, `pipeline: pipeline.yaml
tests:
  - name: x
    input: {stage: nope, records: []}
    expect: {big: 1}
`)
	junit := filepath.Join(t.TempDir(), "report.xml")
	code, stdout, stderr := runTest(t, "--junit", junit, good, bad)
	if code != ExitUsage {
		t.Fatalf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		bad + `:5:19: test "x": expect.big: want a list of records, got "1"`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, stderr)
		}
	}
	// The good file still runs.
	if !strings.Contains(stdout, "ok\t"+good) {
		t.Errorf("stdout:\n%s", stdout)
	}
	if report := readJUnit(t, junit); report.Tests != 5 || report.Errors != 1 || len(report.Suites) != 2 || report.Suites[1].Name != bad {
		t.Errorf("junit report = %+v", report)
	}

	bad2 := writeTestFiles(t, `pipeline: pipeline.yaml
tests:
  - name: x
    input: {stage: nope, records: []}
`)
	code, _, stderr = runTest(t, bad2)
	if want := bad2 + `:4:20: test "x": input.stage: pipeline shop has no stage "nope"`; code != ExitUsage || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant 2 and %q", code, stderr, want)
	}

	code, _, stderr = runTest(t, t.TempDir())
	if code != ExitUsage || !strings.Contains(stderr, "no test files") {
		t.Errorf("a directory without tests: exit %d, stderr:\n%s", code, stderr)
	}
}

type junitReport struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Errors   int `xml:"errors,attr"`
	Suites   []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func readJUnit(t *testing.T, path string) junitReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r junitReport
	if err := xml.Unmarshal(b, &r); err != nil {
		t.Fatalf("junit report: %v\n%s", err, b)
	}
	return r
}

func TestTestTimeout(t *testing.T) {
	dir := t.TempDir()
	pipe := `name: slow
stages:
  - {name: in, source: stdin}
  - {name: wait, transform: delay, with: {duration: 1h}}
  - {name: out, sink: stdout}
`
	if err := os.WriteFile(filepath.Join(dir, "slow.yaml"), []byte(pipe), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "slow_test.yaml")
	cases := `pipeline: slow.yaml
tests:
  - name: never drains
    input: {stage: in, records: [{a: 1}]}
    expect:
      out: [{a: 1}]
`
	if err := os.WriteFile(path, []byte(cases), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runTest(t, "--timeout", "1s", path)
	if code != ExitFailure {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"--- FAIL: never drains",
		"test case did not finish in time: the pipeline had not drained after 1s",
		`expect.out: 1 record(s) expected, 0 got; 1 missing, 0 unexpected (-expected +got):`,
		`      - {"a":1}`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, stdout)
		}
	}
}
