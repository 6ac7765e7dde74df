package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
)

func fileSourceSpec() stages.Spec {
	return stages.Spec{
		Name:    "file",
		Summary: "Read records from files: JSON lines, CSV or text lines",
		Doc: `Reads path, or every file matching it when it is a glob pattern (*, ? or ` +
			`[...]; matches are read one after another in sorted order, directories ` +
			`skipped). Without format, each file's extension decides: .csv is csv; ` +
			`.jsonl, .ndjson and .json are jsonl; anything else is lines. jsonl ` +
			`payloads are the lines as they are: a malformed line fails in the stage ` +
			`that decodes it and goes to the dead-letter stream. In csv the first row ` +
			`of each file names the fields; a row with another number of fields, or ` +
			`one that does not parse, goes to the dead-letter stream as its raw text ` +
			`and reading goes on. Bytes are never altered silently: by default a jsonl ` +
			`line or a csv row that is not valid UTF-8 goes to the dead-letter stream ` +
			`as it is, its reason naming the file, the line and the byte (lines passes ` +
			`any bytes on as they are); encoding decodes files in another character ` +
			`set to UTF-8 as they are read. Lines of any length work. The source ends after the ` +
			`last file. It checkpoints the file and byte offset it has reached, so a ` +
			`resumed run goes on from there; the files must not change in between.

Example:

    - name: read
      source: file
      with:
        path: data/orders-*.csv`,
		Params: []stages.Param{
			{Name: "path", Type: stages.TypeString, Required: true, Path: true, Doc: "A file path, or a glob pattern matching the files to read."},
			{Name: "format", Type: stages.TypeString, Enum: []string{records.JSONL, records.CSV, records.Lines}, Doc: "Record format: " + records.Doc + "; default inferred from each file's extension."},
			{Name: "encoding", Type: stages.TypeString, Default: encodingUTF8, Enum: encodingNames, Doc: encodingDoc},
		},
		NewSource: newFileSource,
	}
}

// fileSource reads its files one after another.
type fileSource struct {
	format   string // "" infers from each file's extension
	encoding string // canonical: "" is utf-8
	files    []string
	next     int // index in files of the next file to open
	f        *os.File
	rr       records.Reader
	resume   *fileCheckpoint // where to start in the next file opened

	// For Progress, which another goroutine calls: the sizes of the
	// files (-1 for one that is not a regular file), the bytes of the
	// files before the one being read, and the position in it.
	sizes []int64
	base  atomic.Int64
	pos   atomic.Int64
}

var (
	_ stages.Resumable        = (*fileSource)(nil)
	_ stages.ProgressReporter = (*fileSource)(nil)
)

// fileCheckpoint is the position of a file source: in the file named
// File, or after every file when File is empty.
type fileCheckpoint struct {
	File string `json:"file,omitempty"`
	records.Position
	// Encoding is the canonical encoding the file was read with, "" for
	// utf-8; with another encoding Offset counts bytes of the decoded text.
	Encoding string `json:"encoding,omitempty"`
}

func newFileSource(p stages.Params, _ stages.Info) (stages.Source, error) {
	path := p.String("path")
	if path == "" {
		return nil, stages.ParamErrorf("path", "must not be empty")
	}
	files, err := expandPath(path)
	if err != nil {
		return nil, err
	}
	sizes := make([]int64, len(files))
	for i, name := range files {
		sizes[i] = -1
		if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() {
			sizes[i] = fi.Size()
		}
	}
	return &fileSource{format: p.String("format"), encoding: canonicalEncoding(p.String("encoding")), files: files, sizes: sizes}, nil
}

// hasGlobMeta reports whether path is a glob pattern.
func hasGlobMeta(path string) bool { return strings.ContainsAny(path, `*?[`) }

// expandPath returns the files path names: itself, or the sorted regular
// files matching it when it is a glob pattern.
func expandPath(path string) ([]string, error) {
	if !hasGlobMeta(path) {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fileError(path, err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("file %s: is a directory", path)
		}
		return []string{path}, nil
	}
	matches, err := filepath.Glob(path)
	if err != nil {
		return nil, fmt.Errorf("file pattern %q: %w", path, err)
	}
	slices.Sort(matches)
	files := matches[:0]
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			return nil, fileError(m, err)
		}
		if !fi.IsDir() {
			files = append(files, m)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("file pattern %q matches no file: %w", path, fs.ErrNotExist)
	}
	return files, nil
}

func (s *fileSource) Read(ctx context.Context) (*stages.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for {
		if s.rr == nil {
			if s.next == len(s.files) {
				return nil, io.EOF
			}
			if err := s.open(s.files[s.next], s.resume); err != nil {
				return nil, err
			}
			s.next++
			s.resume = nil
		}
		m, err := s.rr.Read()
		s.hint(err)
		if err == nil || (m != nil && stages.IsPermanent(err)) {
			return m, err
		}
		name := s.f.Name()
		s.rr = nil
		cerr := s.f.Close()
		s.f = nil
		if !errors.Is(err, io.EOF) {
			return nil, fileError(name, err)
		}
		if cerr != nil {
			return nil, fileError(name, cerr)
		}
	}
}

// hint adds to an error of bytes that are not valid UTF-8, read without an
// encoding, the parameter that decodes them.
func (s *fileSource) hint(err error) {
	var ue *records.InvalidUTF8Error
	if s.encoding == "" && errors.As(err, &ue) {
		ue.Hint = "set encoding: latin1 if the file is Latin-1 (or windows-1252, utf-16)"
	}
}

// open opens file name for reading, from the start or from a checkpoint.
func (s *fileSource) open(name string, at *fileCheckpoint) error {
	osf, err := os.Open(name)
	if err != nil {
		return fileError(name, err)
	}
	s.base.Store(s.sizeBefore(s.next))
	s.pos.Store(0)
	f := &countedFile{File: osf, pos: &s.pos}
	format := s.format
	if format == "" {
		format = records.InputFormat(name)
	}
	r := decode(f, s.encoding)
	var pos records.Position
	var header []string
	if at != nil && at.Offset > 0 {
		if at.Encoding != s.encoding {
			f.Close()
			return fmt.Errorf("file %s: cannot resume at byte %d: the checkpoint was taken reading the file as %s, the encoding is now %s", name, at.Offset, encodingName(at.Encoding), encodingName(s.encoding))
		}
		if r, header, err = seekCheckpoint(f, format, s.encoding, at.Position); err != nil {
			f.Close()
			return fileError(name, err)
		}
		pos = at.Position
	}
	s.f = osf
	s.rr = records.NewReader(format, r, "file "+name, pos, header)
	return nil
}

// encodingName names a canonical encoding in an error.
func encodingName(canonical string) string {
	if canonical == "" {
		return encodingUTF8
	}
	return canonical
}

// seekCheckpoint returns a reader of f, decoded from encoding, that starts
// at position at, and for csv the header the records after it are read
// with. For utf-8 it seeks f to the offset; for another encoding, whose
// offsets count decoded bytes, it decodes the file again up to it.
func seekCheckpoint(f *countedFile, format, encoding string, at records.Position) (io.Reader, []string, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if encoding == "" && at.Offset > fi.Size() {
		return nil, nil, fmt.Errorf("cannot resume at byte %d: the file has %d bytes (it changed since the run started)", at.Offset, fi.Size())
	}
	var header []string
	if format == records.CSV {
		hr := records.NewCSVReader(decode(f, encoding), f.Name(), records.Position{}, nil)
		if _, err := hr.Read(); err != nil && !stages.IsPermanent(err) && !errors.Is(err, io.EOF) {
			return nil, nil, err
		}
		if header = hr.Header; header == nil {
			return nil, nil, fmt.Errorf("cannot resume at byte %d: the file has no csv header", at.Offset)
		}
	}
	if encoding == "" {
		if _, err := f.Seek(at.Offset, io.SeekStart); err != nil {
			return nil, nil, err
		}
		return f, header, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	r := decode(f, encoding)
	n, err := io.CopyN(io.Discard, r, at.Offset)
	if errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("cannot resume at byte %d of the decoded text: it has %d bytes (the file changed since the run started)", at.Offset, n)
	}
	if err != nil {
		return nil, nil, err
	}
	return r, header, nil
}

// Checkpoint returns the file being read and the position in it after the
// last record returned.
func (s *fileSource) Checkpoint() ([]byte, error) {
	var c fileCheckpoint
	switch {
	case s.rr != nil:
		c = fileCheckpoint{File: s.f.Name(), Position: s.rr.Pos(), Encoding: s.encoding}
	case s.next < len(s.files):
		c = fileCheckpoint{File: s.files[s.next]}
	}
	return json.Marshal(c)
}

// Resume makes the source start at a checkpoint: the files before the
// checkpoint's file, in sorted order, count as read.
func (s *fileSource) Resume(checkpoint []byte) error {
	var c fileCheckpoint
	if err := json.Unmarshal(checkpoint, &c); err != nil {
		return fmt.Errorf("checkpoint %q: %w", checkpoint, err)
	}
	if c.File == "" {
		s.next = len(s.files)
		s.base.Store(s.sizeBefore(s.next))
		s.pos.Store(0)
		return nil
	}
	i := slices.Index(s.files, c.File)
	if i < 0 {
		return fmt.Errorf("cannot resume in file %s: it is not among the files to read any more", c.File)
	}
	s.next, s.resume = i, &c
	s.base.Store(s.sizeBefore(i))
	s.pos.Store(c.Offset) // of the decoded text with an encoding: near enough
	return nil
}

// Progress returns the bytes read of the files, those before the file
// being read counted whole, and the sum of their sizes; total is -1 when
// one of them is not a regular file (a named pipe, /dev/stdin).
func (s *fileSource) Progress() (done, total int64) {
	total = s.sizeBefore(len(s.sizes))
	done = max(s.base.Load(), 0) + s.pos.Load()
	if total >= 0 && done > total {
		done = total // a file that grew since the source was built
	}
	return done, total
}

// sizeBefore returns the sum of the sizes of the first n files, -1 if
// one of them has no size.
func (s *fileSource) sizeBefore(n int) int64 {
	var sum int64
	for _, size := range s.sizes[:n] {
		if size < 0 {
			return -1
		}
		sum += size
	}
	return sum
}

// countedFile is a file whose position its reads and seeks keep in pos,
// for Progress.
type countedFile struct {
	*os.File
	pos *atomic.Int64
}

func (f *countedFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.pos.Add(int64(n))
	return n, err
}

func (f *countedFile) Seek(offset int64, whence int) (int64, error) {
	at, err := f.File.Seek(offset, whence)
	if err == nil {
		f.pos.Store(at)
	}
	return at, err
}

func (s *fileSource) Close(context.Context) error {
	s.rr = nil
	s.next = len(s.files)
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// fileError wraps err with the file name, without repeating the name that
// an *fs.PathError carries.
func fileError(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == name {
		return fmt.Errorf("file %s: %s: %w", name, pe.Op, pe.Err)
	}
	return fmt.Errorf("file %s: %w", name, err)
}
