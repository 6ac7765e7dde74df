package pipetest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit XML, as CI systems read it.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes results as a JUnit XML report: a testsuite per test
// file, a testcase per case, a failure for a case that got something
// wrong and an error for one that could not run to its end; a file
// that did not run (Result.Err) is a testsuite with one error.
func WriteJUnit(w io.Writer, results []*Result) error {
	var all junitSuites
	var total float64
	for _, r := range results {
		s := junitSuite{Name: r.File, Time: seconds(r.Elapsed.Seconds())}
		if r.Err != nil {
			s.Cases = append(s.Cases, junitCase{Name: r.File, Classname: r.File, Time: seconds(0),
				Error: &junitMessage{Message: "the test file does not run", Text: r.Err.Error()}})
			s.Tests, s.Errors = 1, 1
		}
		for _, c := range r.Cases {
			jc := junitCase{Name: c.Name, Classname: r.File, Time: seconds(c.Elapsed.Seconds())}
			switch {
			case c.Err != nil:
				jc.Error = &junitMessage{Message: c.Err.Error(), Text: c.Err.Error()}
				s.Errors++
			case len(c.Failures) > 0:
				jc.Failure = &junitMessage{
					Message: fmt.Sprintf("%d expectation(s) not met", len(c.Failures)),
					Text:    strings.Join(c.Failures, "\n"),
				}
				s.Failures++
			}
			s.Tests++
			s.Cases = append(s.Cases, jc)
		}
		all.Tests += s.Tests
		all.Failures += s.Failures
		all.Errors += s.Errors
		total += r.Elapsed.Seconds()
		all.Suites = append(all.Suites, s)
	}
	all.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(all); err != nil {
		return fmt.Errorf("sluice: junit report: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(s float64) string { return fmt.Sprintf("%.3f", s) }
