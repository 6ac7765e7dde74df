package pipeline

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

	"github.com/sluicehq/sluice/internal/bytesize"
	"github.com/sluicehq/sluice/internal/suggest"
	"github.com/sluicehq/sluice/internal/yamlnode"
	"github.com/sluicehq/sluice/stages"
)

// Options tell [Load] and [Parse] where stage types and variables come from.
type Options struct {
	// Registry knows the stage types; nil means stages.Default, which
	// starts empty: the program registers the types it wants in it, such
	// as builtin.Register(stages.Default) for every built-in type (package
	// stages/builtin).
	Registry *stages.Registry
	// LookupEnv returns the value of a ${VAR}; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Policy, if set, restricts what the pipeline may do: a pipeline
	// deployed to a worker is someone else's code (see [Policy]). nil is
	// a pipeline file of the user who runs it, which may do anything.
	Policy *Policy
}

// MaxFileSize is the largest pipeline file [Load] reads: 16 MiB, far
// beyond any pipeline written by hand or generated for a real deployment
// (a stage takes about 70 bytes of YAML at least, so some 200,000 stages),
// and small enough that decoding a file that big stays within a few
// seconds and a few gigabytes of memory.
const MaxFileSize = 16 << 20

// Load reads and parses the pipeline file at path (see [Parse]). An error
// reading the file is returned wrapped, naming the path. A file larger than
// [MaxFileSize] is refused before it is read, with an error wrapping
// [ErrTooLarge] that names the file, its size and the limit.
func Load(path string, opts Options) (*Pipeline, error) {
	data, err := readFile(path, MaxFileSize)
	if errors.Is(err, ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("sluice: load pipeline: %w", err)
	}
	return Parse(path, data, opts)
}

// readFile returns the content of the file at path, or an error wrapping
// ErrTooLarge if it is larger than limit bytes: known by its size before
// reading, or, for a file without one such as a pipe, by reading one byte
// more than limit (the error then says only "over LIMIT bytes").
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Mode().IsRegular() && info.Size() > limit {
		return nil, tooLarge(path, strconv.FormatInt(info.Size(), 10)+" bytes", limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(path, "over "+strconv.FormatInt(limit, 10)+" bytes", limit)
	}
	return data, nil
}

func tooLarge(path, size string, limit int64) error {
	return fmt.Errorf("%w: %s is %s, more than the limit of %d bytes (%s)", ErrTooLarge, path, size, limit, bytesize.MiB(limit))
}

// Parse decodes, interpolates and validates a pipeline file; file names it
// in positions and in [Pipeline.File]. A pipeline that does not validate
// gives a nil *Pipeline and [Problems] holding every problem found, sorted
// by line and column; what opts.Policy refuses is among them. A policy
// that does not validate gives an error wrapping [ErrInvalidPolicy]. Parse
// does not connect to NATS.
func Parse(file string, data []byte, opts Options) (*Pipeline, error) {
	if opts.Policy != nil {
		if err := opts.Policy.Validate(); err != nil {
			return nil, err
		}
	}
	d := &decoder{
		file:      file,
		reg:       opts.Registry,
		lookupEnv: opts.LookupEnv,
		policy:    opts.Policy,
		bad:       make(map[*yaml.Node]bool),
	}
	if d.reg == nil {
		d.reg = stages.Default
	}
	if d.lookupEnv == nil {
		d.lookupEnv = os.LookupEnv
	}
	p := d.decode(data)
	if len(d.problems) > 0 {
		d.problems.sort()
		return nil, d.problems
	}
	return p, nil
}

// Top-level keys of a pipeline file.
var topKeys = []string{"name", "description", "settings", "plugins", "stages"}

// Names of pipelines and stages, used in stream names and subjects.
var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

const maxNameLen = 64

// decoder collects the problems of one file while decoding it.
type decoder struct {
	file      string
	reg       *stages.Registry
	lookupEnv func(string) (string, bool)
	policy    *Policy // nil: a file of one's own
	problems  Problems
	bad       map[*yaml.Node]bool // scalars already reported by interpolate
}

func (d *decoder) decode(data []byte) *Pipeline {
	root := d.parseYAML(data)
	if root == nil {
		return nil
	}
	d.interpolate(root, "")
	p := &Pipeline{File: d.file, Settings: DefaultSettings(), root: root}
	fields := d.mapping(root, "", topKeys)
	if f, ok := fields["name"]; ok {
		p.Name, _ = d.name(f.value, "")
	} else {
		d.problem(root, "missing required key \"name\"")
	}
	if f, ok := fields["description"]; ok {
		p.Description, _ = d.str(f.value, "description")
	}
	if f, ok := fields["settings"]; ok {
		d.settings(f.value, &p.Settings)
	}
	if f, ok := fields["plugins"]; ok {
		p.Plugins = d.plugins(f)
	}
	if f, ok := fields["stages"]; ok {
		p.Stages = d.stages(f)
		p.byName = make(map[string]int, len(p.Stages))
		for i, s := range p.Stages {
			s.defaults(p.Settings)
			p.byName[s.Name] = i
		}
	} else {
		d.problem(root, "missing required key \"stages\"")
	}
	return p
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML returns the top-level mapping of a one-document file, or nil
// after reporting why there is none.
func (d *decoder) parseYAML(data []byte) (root *yaml.Node) {
	defer func() {
		if v := recover(); v != nil { // yaml.v3 panics on some malformed input
			d.problems = append(d.problems, Problem{Pos: Position{File: d.file}, Msg: fmt.Sprintf("invalid YAML: %v", v)})
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) || (err == nil && len(doc.Content) == 0) {
		d.problems = append(d.problems, Problem{Pos: Position{File: d.file}, Msg: "empty file: want a mapping with name and stages"})
		return nil
	}
	if err != nil {
		d.yamlError(err, data)
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.problem(&next, "want one YAML document, found another")
	} else if !errors.Is(err, io.EOF) {
		d.yamlError(err, data)
	}
	root = doc.Content[0]
	if root.Kind != yaml.MappingNode {
		d.problem(root, "want a mapping with name and stages, got %s", yamlnode.Describe(root))
		return nil
	}
	return root
}

// yamlError reports a syntax error of yaml.v3, which gives a line but no
// column. A tab that indents a line and a control character, whose errors
// from yaml.v3 are cryptic, are reported where they are in data and named.
func (d *decoder) yamlError(err error, data []byte) {
	pos := Position{File: d.file}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		pos.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch {
	case strings.Contains(msg, "control characters"):
		if line, col, r, ok := controlChar(data); ok {
			d.problems = append(d.problems, Problem{Pos: Position{File: d.file, Line: line, Col: col},
				Msg: fmt.Sprintf("invalid YAML: a control character (%U) is not allowed: remove it, or write it as an escape in a double-quoted string", r)})
			return
		}
	case pos.Line > 0 && (strings.Contains(msg, "tab character") || strings.Contains(msg, "cannot start any token")):
		// yaml.v3 names the line of the tab or the one before it.
		for _, line := range []int{pos.Line, pos.Line + 1} {
			if col, ok := indentTab(data, line); ok {
				d.problems = append(d.problems, Problem{Pos: Position{File: d.file, Line: line, Col: col},
					Msg: "invalid YAML: a tab character indents this line; YAML indents with spaces"})
				return
			}
		}
	}
	d.problems = append(d.problems, Problem{Pos: pos, Msg: "invalid YAML: " + msg})
}

// indentTab returns the column of the first tab among the blanks that
// start line n (from 1) of data.
func indentTab(data []byte, n int) (col int, ok bool) {
	lines := bytes.SplitN(data, []byte("\n"), n+1)
	if n < 1 || n > len(lines) {
		return 0, false
	}
	for i, c := range lines[n-1] {
		switch c {
		case ' ':
		case '\t':
			return i + 1, true
		default:
			return 0, false
		}
	}
	return 0, false
}

// controlChar returns the line, column and value of the first character
// of data that YAML does not allow: a C0 control other than tab, line
// feed and carriage return, DEL, or a C1 control other than NEL.
func controlChar(data []byte) (line, col int, r rune, ok bool) {
	line, col = 1, 0
	for _, r := range string(data) {
		col++
		switch {
		case r == '\n':
			line, col = line+1, 0
		case r == '\t' || r == '\r' || r == 0x85:
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			return line, col, r, true
		}
	}
	return 0, 0, 0, false
}

// problem reports a problem at node n.
func (d *decoder) problem(n *yaml.Node, format string, args ...any) {
	d.problems = append(d.problems, Problem{Pos: d.pos(n), Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) pos(n *yaml.Node) Position {
	return Position{File: d.file, Line: n.Line, Col: n.Column}
}

// field is one key and its value in a mapping.
type field struct {
	key, value *yaml.Node
}

// mapping returns the fields of mapping n by key. It reports a node that is
// not a mapping, keys that are not scalars, repeated keys and, when known
// is not nil, keys not in known. where prefixes the messages.
func (d *decoder) mapping(n *yaml.Node, where string, known []string) map[string]field {
	n = yamlnode.Resolve(n)
	fields := make(map[string]field)
	if n.Kind != yaml.MappingNode {
		d.problem(n, "%s", yamlnode.At(where, "want a mapping, got "+yamlnode.Describe(n)))
		return fields
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlnode.Resolve(n.Content[i]), yamlnode.Resolve(n.Content[i+1])
		switch f, seen := fields[k.Value]; {
		case k.Kind != yaml.ScalarNode:
			d.problem(k, "%s", yamlnode.At(where, "want a key, got "+yamlnode.Describe(k)))
		case seen:
			d.problem(k, "%s", yamlnode.At(where, fmt.Sprintf("repeated key %q (first at line %d)", k.Value, f.key.Line)))
		case known != nil && !slices.Contains(known, k.Value):
			d.problem(k, "%s", yamlnode.At(where, fmt.Sprintf("unknown key %q%s (want %s)", k.Value, didYouMean(k.Value, known), strings.Join(known, ", "))))
		default:
			fields[k.Value] = field{key: k, value: v}
		}
	}
	return fields
}

// mappingValue returns the value of the first key in mapping n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := yamlnode.Resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return yamlnode.Resolve(n.Content[i+1])
		}
	}
	return nil
}

// str returns the scalar n as a string; null is "".
func (d *decoder) str(n *yaml.Node, where string) (string, bool) {
	switch {
	case d.bad[n]:
		return "", false
	case n.Kind != yaml.ScalarNode:
		d.problem(n, "%s: want a string, got %s", where, yamlnode.Describe(n))
		return "", false
	case yamlnode.IsNull(n):
		return "", true
	}
	return n.Value, true
}

// int returns the scalar n as an int.
func (d *decoder) int(n *yaml.Node, where string) (int, bool) {
	if d.bad[n] {
		return 0, false
	}
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || decodeNode(n, &v) != nil {
		d.problem(n, "%s: want an integer, got %s", where, yamlnode.Describe(n))
		return 0, false
	}
	return v, true
}

// name returns the scalar n as the name of a pipeline or stage, reporting
// a name that does not fit in stream names and subjects.
func (d *decoder) name(n *yaml.Node, where string) (string, bool) {
	s, ok := d.str(n, yamlnode.At(where, "name"))
	switch {
	case !ok:
	case !namePattern.MatchString(s):
		d.problem(n, "%s", yamlnode.At(where, fmt.Sprintf("name %q must match %s", s, namePattern)))
	case len(s) > maxNameLen:
		d.problem(n, "%s", yamlnode.At(where, fmt.Sprintf("name %q is longer than %d characters", s, maxNameLen)))
	default:
		return s, true
	}
	return "", false
}

// plugins loads the Go plugins the plugins key lists into the registry,
// each relative to the pipeline file, or under a policy relative to its
// data directory and only if it allows plugins.
func (d *decoder) plugins(f field) []string {
	n := f.value
	if yamlnode.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.problem(n, "plugins: want a list of paths, got %s", yamlnode.Describe(n))
		return nil
	}
	if d.policy != nil && !d.policy.AllowPlugins && len(n.Content) > 0 {
		d.problem(f.key, "plugins: a deployed pipeline may not load Go plugins: the worker does not allow them (allow_plugins, --allow-plugins)")
		return nil
	}
	var paths []string
	for i, item := range n.Content {
		item = yamlnode.Resolve(item)
		path, ok := d.str(item, fmt.Sprintf("plugins[%d]", i))
		if !ok {
			continue
		}
		paths = append(paths, path)
		if d.policy != nil {
			var err error
			if path, err = d.policy.confine(path); err != nil {
				d.problem(item, "plugins[%d]: %v", i, err)
				continue
			}
		} else if !filepath.IsAbs(path) && d.file != "" && d.file != "-" {
			path = filepath.Join(filepath.Dir(d.file), path)
		}
		if _, err := d.reg.LoadPlugin(path); err != nil {
			d.problem(item, "plugins[%d]: %s", i, strings.TrimPrefix(err.Error(), stages.ErrPlugin.Error()+" "))
		}
	}
	return paths
}

// decodeNode decodes n into out, turning a panic of yaml.v3 into an error.
func decodeNode(n *yaml.Node, out any) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("invalid YAML: %v", v)
		}
	}()
	return n.Decode(out)
}

// didYouMean returns `: did you mean "X"?` for the one of known that word
// is most likely a typo of, or "" when none is close (see
// [suggest.Closest]).
func didYouMean(word string, known []string) string {
	if c := suggest.Closest(word, known...); c != "" {
		return fmt.Sprintf(": did you mean %q?", c)
	}
	return ""
}
