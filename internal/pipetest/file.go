package pipetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/yamlnode"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// File is a decoded test file.
type File struct {
	Path string // the test file, as given
	// Pipeline is the pipeline file, relative to the test file when the
	// test file gives a relative path; PipelinePos is where it names it.
	Pipeline    string
	PipelinePos pipeline.Position
	// Env gives the ${VAR}s of the pipeline file; a variable not in it is
	// looked up in the environment.
	Env   map[string]string
	Cases []*Case
}

// Case is one test case.
type Case struct {
	Name  string
	Pos   pipeline.Position // where its mapping starts
	Input Input
	// Expect is what the stages named emitted, in the order of the file.
	Expect []*Expectation
	// DeadLetters is the dead letters expected, by stage. Every dead
	// letter of the case must be expected: one of a stage not listed
	// fails the case.
	DeadLetters []*DeadLetterExpectation
}

// Input is what enters the pipeline in a case: records published as the
// output of stage Stage.
type Input struct {
	Stage    string
	StagePos pipeline.Position
	Messages []Message
}

// Message is one input record, with the event time it carries, if any.
type Message struct {
	Record    any    // a JSON value
	EventTime string // RFC 3339, empty for none
	Pos       pipeline.Position
}

// Expectation is the records one output should hold: a stage's default
// output ("stage"), one of its routes ("stage.route"), or what a sink
// received. They are compared as JSON, in any order.
type Expectation struct {
	Output  string
	Pos     pipeline.Position
	Records []any
}

// DeadLetterExpectation is the dead letters expected of one stage: Count
// of them, or (Count -1) one matching each of Matches.
type DeadLetterExpectation struct {
	Stage   string
	Pos     pipeline.Position
	Count   int
	Matches []DeadLetterMatch
}

// DeadLetterMatch is one expected dead letter: its error contains Error,
// and its record is Record when HasRecord.
type DeadLetterMatch struct {
	Error     string
	Record    any
	HasRecord bool
	Pos       pipeline.Position
}

// Keys of a test file.
var (
	fileKeys       = []string{"pipeline", "env", "tests"}
	caseKeys       = []string{"name", "input", "expect", "dead_letters"}
	inputKeys      = []string{"stage", "records", "messages"}
	messageKeys    = []string{"record", "event_time"}
	deadLetterKeys = []string{"error", "record"}
)

// MaxFileSize is the largest test file [Load] reads.
const MaxFileSize = 16 << 20

// Load reads and decodes the test file at path. A file that does not
// decode gives [pipeline.Problems], every problem found with its
// position. Load does not read the pipeline file: [Run] does.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sluice: load test file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("sluice: load test file: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("sluice: load test file: %s is larger than %d bytes", path, MaxFileSize)
	}
	return Parse(path, data)
}

// Parse decodes a test file; path names it in positions and resolves
// its pipeline. See [Load].
func Parse(path string, data []byte) (*File, error) {
	d := &decoder{file: path}
	tf := d.decode(data)
	if len(d.problems) > 0 {
		sortProblems(d.problems)
		return nil, d.problems
	}
	return tf, nil
}

type decoder struct {
	file     string
	problems pipeline.Problems
}

func (d *decoder) pos(n *yaml.Node) pipeline.Position {
	return pipeline.Position{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *decoder) problem(n *yaml.Node, format string, args ...any) {
	d.problems = append(d.problems, pipeline.Problem{Pos: d.pos(n), Msg: fmt.Sprintf(format, args...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) decode(data []byte) (tf *File) {
	defer func() {
		if v := recover(); v != nil { // yaml.v3 panics on some malformed input
			d.problems = append(d.problems, pipeline.Problem{Pos: pipeline.Position{File: d.file}, Msg: fmt.Sprintf("invalid YAML: %v", v)})
			tf = nil
		}
	}()
	var doc yaml.Node
	err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc)
	if errors.Is(err, io.EOF) || (err == nil && len(doc.Content) == 0) {
		d.problems = append(d.problems, pipeline.Problem{Pos: pipeline.Position{File: d.file}, Msg: "empty file: want a mapping with pipeline and tests"})
		return nil
	}
	if err != nil {
		pos := pipeline.Position{File: d.file}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			pos.Line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		d.problems = append(d.problems, pipeline.Problem{Pos: pos, Msg: "invalid YAML: " + msg})
		return nil
	}
	root := yamlnode.Resolve(doc.Content[0])
	tf = &File{Path: d.file}
	fields := d.mapping(root, "", fileKeys)
	if root.Kind != yaml.MappingNode {
		return nil
	}
	if f, ok := fields["pipeline"]; !ok {
		d.problem(root, "missing required key \"pipeline\"")
	} else if s, ok := d.str(f.value, "pipeline"); ok {
		if s == "" {
			d.problem(f.value, "pipeline: want the path of a pipeline file")
		}
		tf.Pipeline, tf.PipelinePos = s, d.pos(f.value)
		if !filepath.IsAbs(s) {
			tf.Pipeline = filepath.Join(filepath.Dir(d.file), s)
		}
	}
	if f, ok := fields["env"]; ok && !yamlnode.IsNull(f.value) {
		tf.Env = make(map[string]string)
		for name, ev := range d.mapping(f.value, "env", nil) {
			if s, ok := d.str(ev.value, "env."+name); ok {
				tf.Env[name] = s
			}
		}
	}
	f, ok := fields["tests"]
	if !ok {
		d.problem(root, "missing required key \"tests\"")
		return tf
	}
	if f.value.Kind != yaml.SequenceNode {
		d.problem(f.value, "tests: want a list of test cases, got %s", yamlnode.Describe(f.value))
		return tf
	}
	if len(f.value.Content) == 0 {
		d.problem(f.value, "tests: no test case")
		return tf
	}
	names := make(map[string]*Case)
	for i, n := range f.value.Content {
		c := d.testCase(yamlnode.Resolve(n), fmt.Sprintf("tests[%d]", i))
		if c == nil {
			continue
		}
		if first, seen := names[c.Name]; seen && c.Name != "" {
			d.problem(n, "tests[%d]: repeated name %q (first at line %d)", i, c.Name, first.Pos.Line)
		}
		names[c.Name] = c
		tf.Cases = append(tf.Cases, c)
	}
	return tf
}

func (d *decoder) testCase(n *yaml.Node, where string) *Case {
	fields := d.mapping(n, where, caseKeys)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	c := &Case{Pos: d.pos(n)}
	if f, ok := fields["name"]; !ok {
		d.problem(n, "%s: missing required key \"name\"", where)
	} else if s, ok := d.str(f.value, where+".name"); ok {
		if s == "" {
			d.problem(f.value, "%s.name: want a name", where)
		}
		c.Name = s
	}
	if c.Name != "" {
		where = fmt.Sprintf("test %q", c.Name)
	}
	if f, ok := fields["input"]; !ok {
		d.problem(n, "%s: missing required key \"input\"", where)
	} else {
		d.input(f.value, where+": input", &c.Input)
	}
	if f, ok := fields["expect"]; ok && !yamlnode.IsNull(f.value) {
		for _, ef := range d.fields(f.value, where+": expect") {
			if ef.value.Kind != yaml.SequenceNode {
				d.problem(ef.value, "%s: expect.%s: want a list of records, got %s", where, ef.key.Value, yamlnode.Describe(ef.value))
				continue
			}
			e := &Expectation{Output: ef.key.Value, Pos: d.pos(ef.key)}
			for _, r := range ef.value.Content {
				e.Records = append(e.Records, d.value(r))
			}
			c.Expect = append(c.Expect, e)
		}
	}
	if f, ok := fields["dead_letters"]; ok && !yamlnode.IsNull(f.value) {
		for _, df := range d.fields(f.value, where+": dead_letters") {
			c.DeadLetters = append(c.DeadLetters, d.deadLetters(df, where))
		}
	}
	return c
}

func (d *decoder) input(n *yaml.Node, where string, in *Input) {
	fields := d.mapping(n, where, inputKeys)
	if n.Kind != yaml.MappingNode {
		return
	}
	if f, ok := fields["stage"]; !ok {
		d.problem(n, "%s: missing required key \"stage\"", where)
	} else if s, ok := d.str(f.value, where+".stage"); ok {
		in.Stage, in.StagePos = s, d.pos(f.value)
		if s == "" {
			d.problem(f.value, "%s.stage: want the name of a stage", where)
		}
	}
	recs, hasRecs := fields["records"]
	msgs, hasMsgs := fields["messages"]
	switch {
	case hasRecs && hasMsgs:
		d.problem(msgs.key, "%s: give records or messages, not both", where)
		return
	case !hasRecs && !hasMsgs:
		d.problem(n, "%s: missing required key \"records\" (or \"messages\")", where)
		return
	case hasRecs:
		if recs.value.Kind != yaml.SequenceNode {
			d.problem(recs.value, "%s.records: want a list of records, got %s", where, yamlnode.Describe(recs.value))
			return
		}
		for _, r := range recs.value.Content {
			in.Messages = append(in.Messages, Message{Record: d.value(r), Pos: d.pos(r)})
		}
		return
	}
	if msgs.value.Kind != yaml.SequenceNode {
		d.problem(msgs.value, "%s.messages: want a list of {record, event_time}, got %s", where, yamlnode.Describe(msgs.value))
		return
	}
	for i, mn := range msgs.value.Content {
		mn = yamlnode.Resolve(mn)
		mw := fmt.Sprintf("%s.messages[%d]", where, i)
		mf := d.mapping(mn, mw, messageKeys)
		if mn.Kind != yaml.MappingNode {
			continue
		}
		m := Message{Pos: d.pos(mn)}
		if f, ok := mf["record"]; !ok {
			d.problem(mn, "%s: missing required key \"record\"", mw)
		} else {
			m.Record = d.value(f.value)
		}
		if f, ok := mf["event_time"]; ok {
			t, err := stages.EventTime(d.value(f.value))
			if err != nil {
				d.problem(f.value, "%s.event_time: %v", mw, err)
			} else {
				m.EventTime = stages.FormatEventTime(t)
			}
		}
		in.Messages = append(in.Messages, m)
	}
}

func (d *decoder) deadLetters(f field, where string) *DeadLetterExpectation {
	e := &DeadLetterExpectation{Stage: f.key.Value, Pos: d.pos(f.key)}
	where = where + ": dead_letters." + f.key.Value
	n := f.value
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int":
		v, err := strconv.Atoi(n.Value)
		if err != nil || v < 0 {
			d.problem(n, "%s: want a count >= 0 or a list of {error: substring}, got %s", where, yamlnode.Describe(n))
		}
		e.Count = v
		return e
	case n.Kind != yaml.SequenceNode:
		d.problem(n, "%s: want a count or a list of {error: substring}, got %s", where, yamlnode.Describe(n))
		return e
	}
	e.Count = -1
	for i, mn := range n.Content {
		mn = yamlnode.Resolve(mn)
		mw := fmt.Sprintf("%s[%d]", where, i)
		mf := d.mapping(mn, mw, deadLetterKeys)
		if mn.Kind != yaml.MappingNode {
			continue
		}
		m := DeadLetterMatch{Pos: d.pos(mn)}
		if ef, ok := mf["error"]; ok {
			m.Error, _ = d.str(ef.value, mw+".error")
		}
		if rf, ok := mf["record"]; ok {
			m.Record, m.HasRecord = d.value(rf.value), true
		}
		e.Matches = append(e.Matches, m)
	}
	return e
}

// field is one key and its value in a mapping.
type field struct {
	key, value *yaml.Node
}

// fields returns the fields of mapping n in order, reporting repeated
// keys and keys that are not scalars.
func (d *decoder) fields(n *yaml.Node, where string) []field {
	n = yamlnode.Resolve(n)
	if n.Kind != yaml.MappingNode {
		d.problem(n, "%s: want a mapping, got %s", where, yamlnode.Describe(n))
		return nil
	}
	var out []field
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlnode.Resolve(n.Content[i]), yamlnode.Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.problem(k, "%s: want a key, got %s", where, yamlnode.Describe(k))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.problem(k, "%s: repeated key %q (first at line %d)", where, k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, field{key: k, value: v})
	}
	return out
}

// mapping returns the fields of mapping n by key, reporting keys not in
// known (unless known is nil).
func (d *decoder) mapping(n *yaml.Node, where string, known []string) map[string]field {
	out := make(map[string]field)
	if n.Kind != yaml.MappingNode {
		d.problem(n, "%s", yamlnode.At(where, "want a mapping, got "+yamlnode.Describe(n)))
		return out
	}
	for _, f := range d.fields(n, where) {
		if known != nil && !slices.Contains(known, f.key.Value) {
			d.problem(f.key, "%s", yamlnode.At(where, fmt.Sprintf("unknown key %q (want %s)", f.key.Value, strings.Join(known, ", "))))
			continue
		}
		out[f.key.Value] = f
	}
	return out
}

// str returns the scalar n as a string; null is "".
func (d *decoder) str(n *yaml.Node, where string) (string, bool) {
	switch {
	case n.Kind != yaml.ScalarNode:
		d.problem(n, "%s: want a string, got %s", where, yamlnode.Describe(n))
		return "", false
	case yamlnode.IsNull(n):
		return "", true
	}
	return n.Value, true
}

// value returns the JSON value of node n: mappings with string keys,
// lists, strings (a timestamp stays the text written), numbers, booleans
// and null.
func (d *decoder) value(n *yaml.Node) any {
	n = yamlnode.Resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := yamlnode.Resolve(n.Content[i])
			if k.Kind != yaml.ScalarNode {
				d.problem(k, "want a key, got %s", yamlnode.Describe(k))
				continue
			}
			m[k.Value] = d.value(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			l = append(l, d.value(c))
		}
		return l
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				d.problem(n, "%v", err)
				return nil
			}
			return v
		}
		return n.Value
	}
	d.problem(n, "want a value, got %s", yamlnode.Describe(n))
	return nil
}

// sortProblems orders problems by line and column.
func sortProblems(ps pipeline.Problems) {
	slices.SortStableFunc(ps, func(a, b pipeline.Problem) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
}
