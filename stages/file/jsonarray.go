package file

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
	"github.com/sluicehq/sluice/stages/internal/records"
)

// formatJSON is the record format of a file holding one JSON array, each
// of its elements a record.
const formatJSON = "json"

// errNotArray is the error of a json file that does not hold an array.
var errNotArray = errors.New("not a JSON array")

// utf8BOM is the UTF-8 byte order mark, skipped at the start of a file.
const utf8BOM = "\ufeff"

// sniffSize is how far into a .json file the source looks for its first
// non-blank byte, which tells an array from JSON lines.
const sniffSize = 64 << 10

// sniffJSON tells the format of a .json file from the first non-blank
// byte of br, which it does not consume: json for '[', else jsonl.
func sniffJSON(br *bufio.Reader) (string, error) {
	for n := len(utf8BOM) + 1; ; n = min(2*n, br.Size()) {
		b, err := br.Peek(n)
		b = bytes.TrimPrefix(b, []byte(utf8BOM))
		if i := nonBlank(b); i < len(b) {
			if b[i] == '[' {
				return formatJSON, nil
			}
			return records.JSONL, nil
		}
		if errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) || n == br.Size() {
			return records.JSONL, nil // blank so far: read as lines
		}
		if err != nil {
			return "", err
		}
	}
}

// jsonArrayReader reads a JSON array as a stream, one record per element:
// the element's JSON, compacted onto one line, as jsonl reads it. It holds
// one element at a time, never the whole array. Elements are not checked
// to be objects (a stage that decodes one refuses what is not); one that
// is not valid UTF-8 comes back with a permanent error, and reading goes
// on. An array that is not well-formed (truncated, a bad element,
// content after it) ends the file with an error naming the byte.
//
// Its position is the byte offset just after the last element read and
// the lines before it; a reader started at such a position reads the
// elements after it.
type jsonArrayReader struct {
	name   string
	lc     *lineCounter
	dec    *json.Decoder
	base   int64 // the input offset of the decoder's first byte, less the prefix
	skip   bool  // resumed: the decoder reads "[null" first, an element to skip
	opened bool  // the '[' was read
	at     records.Position
	err    error // sticky: the array ended or failed
	buf    bytes.Buffer
}

// resumePrefix starts the array for a reader resumed after an element:
// the input there goes on with a comma or the closing bracket.
const resumePrefix = "[null"

func newJSONArrayReader(r io.Reader, name string, at records.Position) *jsonArrayReader {
	lc := &lineCounter{r: r, off: at.Offset, line: at.Line}
	br := bufio.NewReaderSize(lc, readBufferSize)
	jr := &jsonArrayReader{name: name, lc: lc, at: at, base: at.Offset}
	var in io.Reader = br
	if at.Offset == 0 {
		if b, _ := br.Peek(len(utf8BOM)); string(b) == utf8BOM {
			_, _ = br.Discard(len(utf8BOM))
			jr.base += int64(len(utf8BOM))
		}
	} else {
		in = io.MultiReader(strings.NewReader(resumePrefix), br)
		jr.base -= int64(len(resumePrefix))
		jr.skip = true
	}
	jr.dec = json.NewDecoder(in)
	return jr
}

// readBufferSize is the read buffer of a json array reader.
const readBufferSize = 64 << 10

// Pos returns where the next element starts: just after the last one read.
func (r *jsonArrayReader) Pos() records.Position { return r.at }

// Read returns the next element, as [records.Reader] says.
func (r *jsonArrayReader) Read() (*stages.Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	if !r.opened {
		start := r.next()
		tok, err := r.dec.Token()
		if errors.Is(err, io.EOF) {
			return nil, r.fail(io.EOF) // a blank file: no records
		}
		if err != nil {
			return nil, r.fail(r.syntax(err))
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, r.fail(r.errorAt(start, fmt.Errorf("%w: it starts with %s", errNotArray, describeToken(tok))))
		}
		r.opened = true
		if r.skip {
			var null json.RawMessage
			if err := r.decode(&null); err != nil {
				return nil, r.fail(err)
			}
		}
	}
	if !r.dec.More() {
		return nil, r.fail(r.close())
	}
	var raw json.RawMessage
	if err := r.decode(&raw); err != nil {
		return nil, r.fail(err)
	}
	end := r.offset()
	start := end - int64(len(raw))
	r.at = records.Position{Offset: end, Line: r.lc.linesBefore(end)}
	r.lc.forget(end)
	if !utf8.Valid(raw) {
		bad := errtext.InvalidUTF8At(raw)
		at := start + int64(bad)
		return stages.NewMessage(bytes.Clone(raw)), stages.Permanent(&arrayUTF8Error{
			Name: r.name, Offset: at, Line: r.at.Line - int64(bytes.Count(raw[bad:], []byte{'\n'})) + 1, Bad: raw[bad],
		})
	}
	r.buf.Reset()
	if err := json.Compact(&r.buf, raw); err != nil {
		return nil, r.fail(r.errorAt(start, err)) // the decoder checked it: not expected
	}
	return stages.NewMessage(bytes.Clone(r.buf.Bytes())), nil
}

// close reads the closing bracket and checks that nothing but white space
// follows. It returns io.EOF when all is well.
func (r *jsonArrayReader) close() error {
	if _, err := r.dec.Token(); err != nil {
		if errors.Is(err, io.EOF) {
			return r.errorAt(r.lc.off, fmt.Errorf("%w: unexpected end of the file, the array is not closed", io.ErrUnexpectedEOF))
		}
		return r.syntax(err)
	}
	end := r.offset()
	start := r.next()
	tok, err := r.dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		r.at = records.Position{Offset: end, Line: r.lc.linesBefore(end)}
		return io.EOF
	case err != nil:
		return r.syntax(err)
	}
	return r.errorAt(start, fmt.Errorf("%s after the end of the array", describeToken(tok)))
}

// decode reads the next element into v.
func (r *jsonArrayReader) decode(v *json.RawMessage) error {
	err := r.dec.Decode(v)
	if errors.Is(err, io.EOF) {
		// No element after a comma: the decoder had nothing left.
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return r.syntax(err)
	}
	return nil
}

// offset returns the input offset the decoder has read up to.
func (r *jsonArrayReader) offset() int64 { return r.base + r.dec.InputOffset() }

// next returns the input offset of the next byte that is not white space,
// or of the end of what the decoder has read.
func (r *jsonArrayReader) next() int64 {
	r.dec.More() // reads on to it
	rest, _ := io.ReadAll(r.dec.Buffered())
	return r.offset() + int64(nonBlank(rest))
}

// nonBlank returns the index of the first byte of b that is not JSON
// white space, len(b) if none.
func nonBlank(b []byte) int {
	for i, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return i
		}
	}
	return len(b)
}

// fail makes err the error of every later Read and returns it.
func (r *jsonArrayReader) fail(err error) error {
	r.err = err
	return err
}

// syntax returns the error of the decoder, located in the input.
func (r *jsonArrayReader) syntax(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		// The offset of an error in a value does not count what Token
		// read before: scan the value again from where the decoder
		// stopped. An error of a token is at the next non-blank byte.
		rest, _ := io.ReadAll(r.dec.Buffered())
		at := nonBlank(rest)
		var again *json.SyntaxError
		var v json.RawMessage
		if errors.As(json.NewDecoder(bytes.NewReader(rest)).Decode(&v), &again) && again.Error() == se.Error() {
			at = int(again.Offset - 1)
		}
		return r.errorAt(r.offset()+int64(at), err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return r.errorAt(r.lc.off, fmt.Errorf("%w: the file ends inside an element", err))
	}
	return err // an I/O error
}

// errorAt locates err at input offset off.
func (r *jsonArrayReader) errorAt(off int64, err error) error {
	off = max(off, 0)
	return fmt.Errorf("line %d, byte %d: %w", r.lc.linesBefore(off)+1, off, err)
}

// describeToken names a JSON token in an error.
func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("'%s'", t)
	case string:
		return "a string"
	case nil:
		return "null"
	case bool:
		return "a boolean"
	}
	return "a number"
}

// arrayUTF8Error is the error of an element of a JSON array that is not
// valid UTF-8. It locates the first bad byte in the file.
type arrayUTF8Error struct {
	Name   string // the input, such as "file in.json"
	Offset int64  // the offset of the bad byte in the input
	Line   int64  // its line, from 1
	Bad    byte
	// Hint, if not empty, says what to do about it; it may be set after
	// the error is returned.
	Hint string
}

func (e *arrayUTF8Error) Error() string {
	s := fmt.Sprintf("%s line %d, byte %d: not valid UTF-8 (%#02x)", e.Name, e.Line, e.Offset, e.Bad)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// lineCounter counts the lines of what is read through it, so that a
// position found later (the decoder reads ahead) can be given its line.
type lineCounter struct {
	r    io.Reader
	off  int64   // the input offset of the next byte read
	line int64   // the newlines before the offsets in nls[head:]
	nls  []int64 // the offsets of the newlines read; those before head are forgotten
	head int
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for b, i := p[:n], 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		c.nls = append(c.nls, c.off+int64(i+j))
		i += j + 1
	}
	c.off += int64(n)
	return n, err
}

// before returns how many of the newlines not forgotten are before input
// offset off.
func (c *lineCounter) before(off int64) int {
	n := 0
	for c.head+n < len(c.nls) && c.nls[c.head+n] < off {
		n++
	}
	return n
}

// linesBefore returns the number of newlines before input offset off,
// which must not be before the last offset forgotten.
func (c *lineCounter) linesBefore(off int64) int64 { return c.line + int64(c.before(off)) }

// forget drops the newlines before input offset off.
func (c *lineCounter) forget(off int64) {
	n := c.before(off)
	c.line += int64(n)
	c.head += n
	if c.head > len(c.nls)/2 {
		c.nls = c.nls[:copy(c.nls, c.nls[c.head:])]
		c.head = 0
	}
}
