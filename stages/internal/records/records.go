// Package records reads and writes the record formats (jsonl, csv and
// lines) that the file source and sink, stdin and stdout, the http source
// and the parse transform share.
package records

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// Record formats of the sources and sinks.
const (
	JSONL = "jsonl"
	CSV   = "csv"
	Lines = "lines"
)

// readBufferSize is the read buffer of the record readers. Longer lines work
// too; they are assembled in a second buffer.
const readBufferSize = 64 << 10

// WriteBufferSize is the write buffer of the record writers.
const WriteBufferSize = 64 << 10

// InputFormat infers a source format from a file name: .csv is csv;
// .jsonl, .ndjson and .json are jsonl; anything else is lines.
func InputFormat(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return CSV
	case ".jsonl", ".ndjson", ".json":
		return JSONL
	}
	return Lines
}

// OutputFormat infers a sink format from a file name: .csv is csv, .txt
// and .log are lines, anything else jsonl.
func OutputFormat(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return CSV
	case ".txt", ".log":
		return Lines
	}
	return JSONL
}

// Reader reads the records of one input.
type Reader interface {
	// Read returns the next record. It returns io.EOF at the end of the
	// input. A record that is malformed comes back as a message holding its
	// raw text together with a permanent error, and reading can go on; any
	// other error (an I/O error, a bad CSV header) ends the input and does
	// not name it: the caller wraps it. A jsonl or csv record that is not
	// valid UTF-8 is malformed, its permanent error an [*InvalidUTF8Error];
	// a csv header that is not ends the input with one. Bytes are never
	// mended into U+FFFD.
	Read() (*stages.Message, error)
	// Pos returns where the next record starts.
	Pos() Position
}

// Position is a position in an input: the byte offset where the next
// record starts and the number of lines before it.
type Position struct {
	Offset int64 `json:"offset"`
	Line   int64 `json:"line"`
}

// NewReader returns a reader of format over r, which starts at
// position at of the input; name (a file name or "stdin") and line numbers
// locate errors. A csv reader that does not start at the beginning is given
// the header of the input.
func NewReader(format string, r io.Reader, name string, at Position, header []string) Reader {
	switch format {
	case CSV:
		return NewCSVReader(r, name, at, header)
	case Lines:
		return &linesReader{lr: newLineReader(r, at)}
	}
	return &jsonlReader{name: name, lr: newLineReader(r, at)}
}

// InvalidUTF8Error is the error of a record or a csv header that is not
// valid UTF-8. It locates the first bad byte, so that one can find it in
// the input without the record being quoted.
type InvalidUTF8Error struct {
	Name string // the input, such as "file in.csv" or "stdin"; "" when the caller names it
	Line int64  // the line of the bad byte, from 1
	Byte int    // the offset of the bad byte in its line, from 0
	Bad  byte   // the bad byte
	// Header is set when the bad byte is in a csv header.
	Header bool
	// Hint, if not empty, says what to do about it, such as which
	// parameter decodes the input. It may be set after the error is
	// returned: the error text is made when asked for.
	Hint string
}

func (e *InvalidUTF8Error) Error() string {
	var b strings.Builder
	if e.Name != "" {
		b.WriteString(e.Name)
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "line %d: ", e.Line)
	if e.Header {
		b.WriteString("header: ")
	}
	fmt.Fprintf(&b, "not valid UTF-8 at byte %d of the line (%#02x)", e.Byte, e.Bad)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// invalidUTF8 returns the error of raw, the text of a record starting on
// line line of input name, which is not valid UTF-8: it locates the first
// bad byte.
func invalidUTF8(name string, line int64, raw []byte) *InvalidUTF8Error {
	i := errtext.InvalidUTF8At(raw)
	before := raw[:i]
	e := &InvalidUTF8Error{
		Name: name,
		Line: line + int64(bytes.Count(before, []byte{'\n'})),
		Byte: i - (bytes.LastIndexByte(before, '\n') + 1),
	}
	if i < len(raw) {
		e.Bad = raw[i]
	}
	return e
}

// lineReader reads lines of any length. The returned line is valid until
// the next call.
type lineReader struct {
	br   *bufio.Reader
	long []byte // a line longer than the buffer, reused
	at   Position
}

func newLineReader(r io.Reader, at Position) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, readBufferSize), at: at}
}

// next returns the next line without its line ending ("\n" or "\r\n"), or
// io.EOF after the last line. A last line without a line ending is a line.
func (l *lineReader) next() ([]byte, error) {
	line, err := l.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		l.long = append(l.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = l.br.ReadSlice('\n')
			l.long = append(l.long, line...)
		}
		line = l.long
	}
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, err
	}
	l.at.Offset += int64(len(line))
	l.at.Line++
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, nil
}

// jsonlReader reads JSON lines: one record per non-blank line, the payload
// being the line as it is. The source does not decode it: a malformed line
// fails in the stage that reads it. A line that is not valid UTF-8 fails
// here, though, where its line number is known.
type jsonlReader struct {
	name string
	lr   *lineReader
}

func (r *jsonlReader) Read() (*stages.Message, error) {
	for {
		line, err := r.lr.next()
		if err != nil {
			return nil, err
		}
		if IsBlank(line) {
			continue
		}
		m := stages.NewMessage(bytes.Clone(line))
		if !utf8.Valid(line) {
			return m, stages.Permanent(invalidUTF8(r.name, r.lr.at.Line, line))
		}
		return m, nil
	}
}

func (r *jsonlReader) Pos() Position { return r.lr.at }

// IsBlank reports whether b holds nothing but white space.
func IsBlank(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return false
		}
	}
	return true
}

// linesReader reads text: every line, blank ones included, is a record
// whose payload is the raw line. The bytes are passed on as they are, not
// checked: no string is made of them here, and a stage that decodes the
// payload refuses one that is not valid UTF-8.
type linesReader struct {
	lr *lineReader
}

func (r *linesReader) Read() (*stages.Message, error) {
	line, err := r.lr.next()
	if err != nil {
		return nil, err
	}
	return stages.NewMessage(bytes.Clone(line)), nil
}

func (r *linesReader) Pos() Position { return r.lr.at }

// CSVReader reads CSV with a header row: each further row becomes a JSON
// object of strings keyed by the header's names. A row with another number
// of fields than the header, one that does not parse or one that is not
// valid UTF-8 (which encoding the record would mend into U+FFFD) is
// returned as its raw text with a permanent error.
type CSVReader struct {
	name   string
	tee    *rawTee
	cr     *csv.Reader
	Header []string
	start  Position // where the reader started in the input
	at     Position // where the next record starts
}

// NewCSVReader returns a csv reader over r, as [NewReader] does for csv.
func NewCSVReader(r io.Reader, name string, at Position, header []string) *CSVReader {
	tee := &rawTee{r: r, base: at.Offset}
	cr := csv.NewReader(bufio.NewReaderSize(tee, readBufferSize))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return &CSVReader{name: name, tee: tee, cr: cr, Header: header, start: at, at: at}
}

// Pos returns where the next record starts.
func (r *CSVReader) Pos() Position { return r.at }

// line turns a line number of the csv.Reader into one of the input.
func (r *CSVReader) line(n int) int64 { return r.start.Line + int64(n) }

// Read returns the next record, as [Reader] says.
func (r *CSVReader) Read() (*stages.Message, error) {
	for r.Header == nil {
		row, err := r.cr.Read()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: header: %w", r.line(pe.StartLine), pe.Err)
			}
			return nil, err
		}
		raw := r.consumed()
		if !validFields(row) {
			line, _ := r.cr.FieldPos(0)
			e := invalidUTF8("", r.line(line), raw)
			e.Header = true
			return nil, e
		}
		header := slices.Clone(row)
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // a byte order mark
		r.Header = columnNames(header)
	}
	row, err := r.cr.Read()
	if err != nil {
		var pe *csv.ParseError
		if !errors.As(err, &pe) {
			return nil, err
		}
		m := stages.NewMessage(r.consumed())
		return m, stages.Permanent(fmt.Errorf("%s line %d: %w", r.name, r.line(pe.StartLine), pe.Err))
	}
	if len(row) != len(r.Header) {
		line, _ := r.cr.FieldPos(0)
		m := stages.NewMessage(r.consumed())
		return m, stages.Permanent(fmt.Errorf("%s line %d: row has %d fields, header has %d", r.name, r.line(line), len(row), len(r.Header)))
	}
	if !validFields(row) {
		line, _ := r.cr.FieldPos(0)
		raw := r.consumed()
		return stages.NewMessage(raw), stages.Permanent(invalidUTF8(r.name, r.line(line), raw))
	}
	r.consumed()
	rec := make(map[string]any, len(row))
	for i, v := range row {
		rec[r.Header[i]] = v
	}
	return stages.NewValueMessage(rec), nil
}

// columnNames returns the field names of the columns of header, as it
// names them, but for two cases that would lose data: a column without a
// name is column_N (N its position, from 1), and a name that comes again
// is followed by _2, _3... on its later columns, so that every column is
// kept under a name of its own, as spreadsheets and data-frame libraries
// do.
func columnNames(header []string) []string {
	taken := make(map[string]bool, len(header))
	for _, h := range header {
		taken[h] = true
	}
	seen := make(map[string]bool, len(header))
	out := make([]string, len(header))
	for i, h := range header {
		base := h
		if base == "" {
			base = "column_" + strconv.Itoa(i+1)
		}
		// A name made here takes none that the header has.
		name := base
		for n := 2; seen[name] || name != h && taken[name]; n++ {
			name = base + "_" + strconv.Itoa(n)
		}
		seen[name] = true
		out[i] = name
	}
	return out
}

// validFields reports whether every field of row is valid UTF-8.
func validFields(row []string) bool {
	for _, f := range row {
		if !utf8.ValidString(f) {
			return false
		}
	}
	return true
}

// consumed returns a copy of the raw text of the record just read, without
// the blank lines before it and its line ending, and forgets it.
func (r *CSVReader) consumed() []byte {
	end := r.start.Offset + r.cr.InputOffset()
	raw := r.tee.span(r.at.Offset, end)
	r.at.Line += int64(bytes.Count(raw, []byte{'\n'}))
	raw = bytes.TrimLeft(raw, "\r\n")
	raw = bytes.TrimRight(raw, "\r\n")
	out := bytes.Clone(raw)
	r.tee.discard(end)
	r.at.Offset = end
	return out
}

// rawTee keeps what is read through it from stream offset base on, so that
// the raw text of a CSV record can be recovered after csv.Reader parsed it.
type rawTee struct {
	r    io.Reader
	buf  []byte
	base int64 // the stream offset of buf[0]
}

func (t *rawTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.buf = append(t.buf, p[:n]...)
	return n, err
}

// span returns the bytes from stream offset from to to, which must have
// been read and not discarded.
func (t *rawTee) span(from, to int64) []byte {
	return t.buf[from-t.base : to-t.base]
}

// discard forgets the bytes before stream offset off, moving the rest to the
// front of the buffer once at least half of it is forgotten.
func (t *rawTee) discard(off int64) {
	n := int(off - t.base)
	if n < len(t.buf)/2 {
		return
	}
	t.buf = t.buf[:copy(t.buf, t.buf[n:])]
	t.base = off
}

// Writer encodes messages as jsonl, csv or lines. It is not safe for
// concurrent use; the sinks hold a mutex around it.
type Writer struct {
	format  string
	columns []string // csv: the column order, nil until the first record
	Header  bool     // csv: the header line is written (or already in the file)
	cw      *csv.Writer
	fields  []string // csv: one row, reused
	scratch bytes.Buffer
}

// NewWriter returns a writer of format onto w. For csv, columns is
// the column order; nil means the sorted keys of the first record. With
// header false the csv header line is written before the first record.
func NewWriter(format string, w *bufio.Writer, columns []string, header bool) *Writer {
	rw := &Writer{format: format, columns: columns, Header: header}
	if format == CSV {
		// csv.NewWriter writes straight into w: its buffer is large enough.
		rw.cw = csv.NewWriter(w)
	}
	return rw
}

// write encodes m onto w. A message that cannot be encoded in the format
// gives a permanent error and nothing of it is written; any other error is
// an I/O error of w.
func (rw *Writer) write(w *bufio.Writer, m *stages.Message) error {
	if rw.format == CSV {
		return rw.writeCSV(m)
	}
	p, err := m.Payload()
	if err != nil {
		return err
	}
	if rw.format == Lines {
		// Raw payloads, one per line, as the lines source reads them.
		if _, err := w.Write(p); err != nil {
			return err
		}
		return w.WriteByte('\n')
	}
	if !json.Valid(p) {
		return stages.Permanent(errors.New("record is not valid JSON"))
	}
	if bytes.IndexByte(p, '\n') >= 0 || bytes.IndexByte(p, '\r') >= 0 {
		rw.scratch.Reset()
		if err := json.Compact(&rw.scratch, p); err != nil {
			return stages.Permanent(fmt.Errorf("compact record: %w", err))
		}
		p = rw.scratch.Bytes()
	}
	if _, err := w.Write(p); err != nil {
		return err
	}
	return w.WriteByte('\n')
}

func (rw *Writer) writeCSV(m *stages.Message) error {
	rec, err := m.Record()
	if err != nil {
		return err
	}
	if rw.columns == nil {
		rw.columns = make([]string, 0, len(rec))
		for k := range rec {
			rw.columns = append(rw.columns, k)
		}
		slices.Sort(rw.columns)
	}
	rw.fields = rw.fields[:0]
	for _, c := range rw.columns {
		s, err := csvField(rec[c])
		if err != nil {
			return stages.Permanent(fmt.Errorf("field %q: %w", c, err))
		}
		rw.fields = append(rw.fields, s)
	}
	if !rw.Header {
		if err := rw.cw.Write(rw.columns); err != nil {
			return err
		}
		rw.Header = true
	}
	return rw.cw.Write(rw.fields)
}

// flush writes what the csv writer holds to w and flushes w.
func (rw *Writer) flush(w *bufio.Writer) error {
	if rw.cw != nil {
		rw.cw.Flush()
		return rw.cw.Error()
	}
	return w.Flush()
}

// csvField formats one value of a record as a CSV field: strings as they
// are, numbers and booleans as in JSON, null as empty, and arrays, objects
// and other values as their JSON encoding (without quotes for a JSON
// string, such as a time).
func csvField(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return FormatFloat(x), nil
	case json.Number:
		return x.String(), nil
	}
	b, err := stages.EncodeJSON(v)
	if err != nil {
		return "", err
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	return string(b), nil
}

// FormatFloat formats f the way encoding/json does.
func FormatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Clean up e-09 to e-9, as encoding/json does.
		if n := len(s); n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:]
		}
		return s
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// WriteBatch writes batch through rw onto w and flushes w. A message that
// cannot be encoded fails alone: the others are written and the result is a
// *BatchError. An I/O error fails the whole batch.
func WriteBatch(rw *Writer, w *bufio.Writer, batch []*stages.Message) error {
	var errs []error
	for i, m := range batch {
		err := rw.write(w, m)
		if err == nil {
			continue
		}
		if !stages.IsPermanent(err) {
			return err
		}
		if errs == nil {
			errs = make([]error, len(batch))
		}
		errs[i] = err
	}
	if err := rw.flush(w); err != nil {
		return err
	}
	if errs != nil {
		return &stages.BatchError{Errs: errs}
	}
	return nil
}
