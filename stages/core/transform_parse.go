package core

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
	"github.com/sluicehq/sluice/stages/internal/records"
)

// Formats of the parse transform.
const (
	parseFormatJSON   = "json"
	parseFormatCSV    = "csv"
	parseFormatLines  = "lines"
	parseFormatLogfmt = "logfmt"
)

// lineField is the field of the record a line becomes in format lines.
const lineField = "line"

func parseSpec() stages.Spec {
	return stages.Spec{
		Name:      "parse",
		Stateless: true,
		Summary:   "Parse text in a record or payload as JSON, CSV, lines or logfmt",
		Doc: `Parses text into records: the payload as raw bytes, or with field the ` +
			`string in that top-level field of the record. Each value parsed is one ` +
			`output with the input's headers: it replaces the record, or with target ` +
			`(which needs field) it is stored in that top-level field of the record, ` +
			`whose other fields are kept (target may be field itself). Text with no ` +
			`value in it (empty, or only blank lines) gives no output, counted as ` +
			`filtered.

Formats:
  - json: a JSON value, or several one after another (such as JSON lines), ` +
			`each an output; integers that fit in 64 bits stay exact.
  - csv: rows of fields separated by delimiter; each row is an object of ` +
			`strings keyed by columns, or without columns by the first row of the ` +
			`text (the header). Every row must have as many fields as there are names.
  - lines: each non-blank line (a line of only spaces and tabs is blank) ` +
			`without its line ending; as a record it is {"line": TEXT}, in target ` +
			`the string TEXT.
  - logfmt: each non-blank line of key=value pairs separated by spaces is an ` +
			`object of strings; a value with spaces is quoted ("a b", with JSON ` +
			`escapes), key= gives "", a key alone gives true, and of a repeated key ` +
			`the last value counts.

A field that is missing or not a string, text that is not UTF-8, or text ` +
			`that does not parse (the error gives the line, and the column for ` +
			`logfmt) sends the message to the dead-letter stream; nothing of it is ` +
			`passed on.

Example:

    - name: fields
      transform: parse
      with:
        format: logfmt
        field: message
        target: fields`,
		Params: []stages.Param{
			{Name: "format", Type: stages.TypeString, Required: true, Enum: []string{parseFormatJSON, parseFormatCSV, parseFormatLines, parseFormatLogfmt}, Doc: "Format of the text."},
			{Name: "field", Type: stages.TypeString, Doc: "Top-level string field to parse; without it the payload is parsed."},
			{Name: "target", Type: stages.TypeString, Doc: "Top-level field that receives each parsed value, the rest of the record kept; without it the value replaces the record. Needs field."},
			{Name: "columns", Type: stages.TypeStringList, Doc: "csv: names of the columns, every row being data; without it the first row is the header."},
			{Name: "delimiter", Type: stages.TypeString, Doc: `csv: the one character between fields, default ","; '\t' is a tab.`},
		},
		Check:        checkParse,
		NewTransform: newParseTransform,
	}
}

func checkParse(p stages.Params) error {
	_, err := newParseConfig(p)
	return err
}

// parseConfig is the checked parameters of a parse transform.
type parseConfig struct {
	format  string
	field   string
	target  string
	columns []string
	comma   rune
}

func newParseConfig(p stages.Params) (parseConfig, error) {
	c := parseConfig{format: p.String("format"), field: p.String("field"), target: p.String("target"), columns: p.Strings("columns"), comma: ','}
	for _, name := range []string{"field", "target"} {
		if p.Has(name) && p.String(name) == "" {
			return c, stages.ParamErrorf(name, "must not be empty")
		}
	}
	if c.target != "" && c.field == "" {
		return c, stages.ParamErrorf("target", "needs field: without it the parsed value is the record")
	}
	for _, name := range []string{"columns", "delimiter"} {
		if p.Has(name) && c.format != parseFormatCSV {
			return c, stages.ParamErrorf(name, "applies to format csv only (format is %s)", c.format)
		}
	}
	if p.Has("columns") {
		if len(c.columns) == 0 {
			return c, stages.ParamErrorf("columns", "want at least one column")
		}
		if err := uniqueColumns(c.columns); err != nil {
			return c, stages.ParamErrorf("columns", "%s", err)
		}
	}
	if p.Has("delimiter") {
		d := p.String("delimiter")
		if d == `\t` {
			d = "\t"
		}
		r, n := utf8.DecodeRuneInString(d)
		if n == 0 || n != len(d) || r == utf8.RuneError || r == '"' || r == '\r' || r == '\n' {
			return c, stages.ParamErrorf("delimiter", "want one character other than a quote or a line ending (got %q)", p.String("delimiter"))
		}
		c.comma = r
	}
	return c, nil
}

// uniqueColumns fails on a column name given twice.
func uniqueColumns(cols []string) error {
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if seen[c] {
			return fmt.Errorf("column %q is repeated", c)
		}
		seen[c] = true
	}
	return nil
}

// parseTransform parses text into records.
type parseTransform struct {
	parseConfig
	vals []any // the values of one input, reused
}

var _ stages.Transform = (*parseTransform)(nil)

func newParseTransform(p stages.Params, _ stages.Info) (stages.Transform, error) {
	c, err := newParseConfig(p)
	if err != nil {
		return nil, err
	}
	return &parseTransform{parseConfig: c}, nil
}

func (t *parseTransform) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	var rec map[string]any
	var text []byte
	what := "payload"
	if t.field == "" {
		p, err := in.Payload()
		if err != nil {
			return out, err
		}
		text = p
	} else {
		r, err := in.Record()
		if err != nil {
			return out, err
		}
		v, ok := r[t.field]
		if !ok {
			return out, stages.Permanent(fmt.Errorf("parse: field %q is missing", t.field))
		}
		s, ok := v.(string)
		if !ok {
			return out, stages.Permanent(fmt.Errorf("parse: field %q is a JSON %s, not a string", t.field, errtext.JSONKind(v)))
		}
		rec, text, what = r, []byte(s), fmt.Sprintf("field %q", t.field)
	}
	if !utf8.Valid(text) {
		return out, stages.Permanent(fmt.Errorf("parse: %s is not valid UTF-8 (at byte %d)", what, errtext.InvalidUTF8At(text)))
	}
	vals, err := t.parse(text, t.vals[:0])
	t.vals = vals
	defer clear(t.vals)
	if err != nil {
		return out, stages.Permanent(fmt.Errorf("parse: %s as %s: %w", what, t.format, err))
	}
	for i, v := range vals {
		if t.format == parseFormatLines && t.target == "" {
			v = map[string]any{lineField: v}
		}
		if t.target != "" {
			r := rec
			if i < len(vals)-1 {
				r = maps.Clone(rec) // the last value takes the record itself
			}
			r[t.target] = v
			v = r
		}
		if len(vals) == 1 {
			in.SetValue(v)
			return append(out, in), nil
		}
		out = append(out, in.Derive(v))
	}
	return out, nil
}

func (t *parseTransform) Close(context.Context) error { return nil }

// parse appends the values of text to vals.
func (t *parseTransform) parse(text []byte, vals []any) ([]any, error) {
	switch t.format {
	case parseFormatJSON:
		return parseJSONValues(text, vals)
	case parseFormatCSV:
		return parseCSVRows(text, t.comma, t.columns, vals)
	case parseFormatLines:
		for l := range bytes.Lines(text) {
			l = bytes.TrimSuffix(bytes.TrimSuffix(l, []byte{'\n'}), []byte{'\r'})
			if !records.IsBlank(l) {
				vals = append(vals, string(l))
			}
		}
		return vals, nil
	}
	return parseLogfmtLines(text, vals)
}

// parseJSONValues appends the JSON values of text, one or several in a row.
func parseJSONValues(text []byte, vals []any) ([]any, error) {
	if records.IsBlank(text) {
		return vals, nil
	}
	v, first := stages.DecodeJSON(text)
	if first == nil {
		return append(vals, v), nil
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	for i := 1; ; i++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return vals, nil
		}
		if err == nil {
			v, err = stages.DecodeJSON(raw)
		}
		switch {
		case err != nil && i == 1:
			return vals, first
		case err != nil:
			return vals, fmt.Errorf("value %d: %w", i, err)
		}
		vals = append(vals, v)
	}
}

// parseCSVRows appends a record of strings for each row of text, keyed by
// columns or by the first row.
func parseCSVRows(text []byte, comma rune, columns []string, vals []any) ([]any, error) {
	cr := csv.NewReader(bytes.NewReader(text))
	cr.Comma = comma
	cr.FieldsPerRecord = -1
	names := "columns names"
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return vals, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return vals, fmt.Errorf("line %d: %w", pe.StartLine, pe.Err)
			}
			return vals, err
		}
		line, _ := cr.FieldPos(0)
		if columns == nil {
			row[0] = strings.TrimPrefix(row[0], "\ufeff") // a byte order mark
			if err := uniqueColumns(row); err != nil {
				return vals, fmt.Errorf("line %d: header: %w", line, err)
			}
			columns, names = slices.Clone(row), "the header has"
			continue
		}
		if len(row) != len(columns) {
			return vals, fmt.Errorf("line %d: row has %d fields, %s %d", line, len(row), names, len(columns))
		}
		rec := make(map[string]any, len(row))
		for i, v := range row {
			rec[columns[i]] = v
		}
		vals = append(vals, rec)
	}
}

// parseLogfmtLines appends an object for each non-blank line of logfmt
// text: key=value pairs separated by spaces or tabs.
func parseLogfmtLines(text []byte, vals []any) ([]any, error) {
	n := 0
	for l := range bytes.Lines(text) {
		n++
		l = bytes.TrimSuffix(bytes.TrimSuffix(l, []byte{'\n'}), []byte{'\r'})
		if records.IsBlank(l) {
			continue
		}
		rec, err := parseLogfmt(l)
		if err != nil {
			return vals, fmt.Errorf("line %d %w", n, err)
		}
		vals = append(vals, rec)
	}
	return vals, nil
}

// parseLogfmt parses one line of logfmt. Its errors begin "col N: ".
func parseLogfmt(l []byte) (map[string]any, error) {
	rec := make(map[string]any)
	i := 0
	for {
		for i < len(l) && (l[i] == ' ' || l[i] == '\t') {
			i++
		}
		if i == len(l) {
			return rec, nil
		}
		start := i
		for i < len(l) && l[i] != ' ' && l[i] != '\t' && l[i] != '=' && l[i] != '"' {
			i++
		}
		if i == start {
			return nil, fmt.Errorf("col %d: want a key, got %q", i+1, l[i])
		}
		key := string(l[start:i])
		if i == len(l) || l[i] == ' ' || l[i] == '\t' {
			rec[key] = true
			continue
		}
		if l[i] == '"' {
			return nil, fmt.Errorf("col %d: quote in key %q", i+1, key)
		}
		i++ // '='
		if i < len(l) && l[i] == '"' {
			end, err := quotedEnd(l, i)
			if err != nil {
				return nil, err
			}
			var s string
			if err := json.Unmarshal(l[i:end], &s); err != nil {
				return nil, fmt.Errorf("col %d: value of %q: invalid quoted string", i+1, key)
			}
			rec[key] = s
			i = end
			if i < len(l) && l[i] != ' ' && l[i] != '\t' {
				return nil, fmt.Errorf("col %d: want a space after the quoted value of %q", i+1, key)
			}
			continue
		}
		start = i
		for i < len(l) && l[i] != ' ' && l[i] != '\t' {
			if l[i] == '"' {
				return nil, fmt.Errorf("col %d: quote inside the unquoted value of %q", i+1, key)
			}
			i++
		}
		rec[key] = string(l[start:i])
	}
}

// quotedEnd returns the index after the closing quote of the string that
// begins with the quote at l[i].
func quotedEnd(l []byte, i int) (int, error) {
	for j := i + 1; j < len(l); j++ {
		switch l[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("col %d: unterminated quoted value", i+1)
}
