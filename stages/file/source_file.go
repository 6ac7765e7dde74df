package file

import (
	"bufio"
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
		Summary: "Read records from files: JSON lines, JSON arrays, CSV or text lines, plain or compressed",
		Doc: `Reads path, or every file matching it when it is a glob pattern (*, ? or ` +
			`[...]; matches are read one after another in sorted order, directories ` +
			`skipped). A file ending in .gz is read through gzip, one ending in .zst or ` +
			`.zstd through zstd, as it is read; the name without that extension tells ` +
			`its format (orders.jsonl.gz is jsonl). Without format, each file's ` +
			`extension decides: .csv is csv; .jsonl and .ndjson are jsonl; .json is json ` +
			`if its first non-blank byte is [, else jsonl; anything else is lines. jsonl ` +
			`payloads are the lines as they are: a malformed line fails in the stage ` +
			`that decodes it and goes to the dead-letter stream. json reads one JSON ` +
			`array as a stream, never holding more than one element: each element, ` +
			`compacted onto one line, is a record, as a jsonl line would be (elements ` +
			`that are not objects too); an array that is not well-formed (a bad ` +
			`element, a truncated file, content after it) stops the run with an error ` +
			`naming the file, the line and the byte, after the elements before it. In csv the first row ` +
			`of each file names the fields; a row with another number of fields, or ` +
			`one that does not parse, goes to the dead-letter stream as its raw text ` +
			`and reading goes on. Bytes are never altered silently: by default a jsonl ` +
			`line, a json element or a csv row that is not valid UTF-8 goes to the dead-letter stream ` +
			`as it is, its reason naming the file, the line and the byte (lines passes ` +
			`any bytes on as they are); encoding decodes files in another character ` +
			`set to UTF-8 as they are read. Lines of any length work. The source ends after the ` +
			`last file. It checkpoints the file and byte offset it has reached, so a ` +
			`resumed run goes on from there; the files must not change in between. ` +
			`With a glob pattern the checkpoint also lists the files of the run (while ` +
			`the list takes at most 256 KiB, some thousands of files): a ` +
			`resumed run skips those it finished, goes on inside the one it was ` +
			`reading, reads the others in the same order, then the files that match ` +
			`the pattern now and were not there before; with a longer list, the files ` +
			`sorted before the one it was reading count as read. A compressed file, like one ` +
			`in another encoding, is resumed by decompressing it again from its start ` +
			`up to the checkpointed offset of its decompressed text.

Example:

    - name: read
      source: file
      with:
        path: data/orders-*.csv`,
		Params: []stages.Param{
			{Name: "path", Type: stages.TypeString, Required: true, Path: true, Doc: "A file path, or a glob pattern matching the files to read; .gz, .zst and .zstd files are decompressed."},
			{Name: "format", Type: stages.TypeString, Enum: []string{records.JSONL, formatJSON, records.CSV, records.Lines}, Doc: "Record format: json (one JSON array, streamed: a record per element, compacted onto one line), " + records.Doc + "; default inferred from each file's extension (less .gz, .zst or .zstd), a .json file being json when it starts with [ and jsonl otherwise."},
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
	release  func()          // releases the decompressor of f
	resume   *fileCheckpoint // where to start in the next file opened

	// With a glob pattern the checkpoint lists the files of the run, in
	// the order they are read: listed is that list in JSON, made again
	// only when the list changes (on Resume), nil when there is no
	// pattern or the list is longer than maxListed.
	glob   bool
	listed []byte

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
	// utf-8; with another encoding, or in a compressed file, Offset counts
	// bytes of the decompressed and decoded text.
	Encoding string `json:"encoding,omitempty"`
	// Files lists, when the path is a glob pattern, every file of the run
	// in the order it reads them: those before File are read, File and
	// those after it are still to read. A resumed run reads them in that
	// order, then the files matching the pattern that the list does not
	// name, so that the records it reads again come in the order they
	// came before (the runner numbers them in that order).
	Files []string `json:"files,omitempty"`
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
	s := &fileSource{format: p.String("format"), encoding: canonicalEncoding(p.String("encoding")), glob: hasGlobMeta(path)}
	if err := s.setFiles(files, false); err != nil {
		return nil, err
	}
	return s, nil
}

// setFiles makes files the files the source reads, and finds their sizes:
// -1 for one that is not a regular file, and 0 for one that is gone if
// gone is true (a file of the run that was read before a resume).
func (s *fileSource) setFiles(files []string, gone bool) error {
	s.files = files
	s.sizes = make([]int64, len(files))
	for i, name := range files {
		s.sizes[i] = -1
		fi, err := os.Stat(name)
		switch {
		case err == nil && fi.Mode().IsRegular():
			s.sizes[i] = fi.Size()
		case gone && errors.Is(err, fs.ErrNotExist):
			s.sizes[i] = 0
		}
	}
	s.listed = nil
	if !s.glob {
		return nil
	}
	listed, err := json.Marshal(files)
	if err != nil {
		return err
	}
	if len(listed) <= maxListed {
		s.listed = listed
	}
	return nil
}

// maxListed is the most bytes the list of files takes in a checkpoint;
// the runner stores the checkpoint, base64-encoded, in one message of at
// most the server's max_payload (1 MiB by default). A longer list is left
// out: the files before the checkpoint's in sorted order then count as
// read.
const maxListed = 256 << 10

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
		cerr := s.closeFile()
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
	if s.encoding != "" {
		return
	}
	const hint = "set encoding: latin1 if the file is Latin-1 (or windows-1252, utf-16)"
	var ue *records.InvalidUTF8Error
	var ae *arrayUTF8Error
	switch {
	case errors.As(err, &ue):
		ue.Hint = hint
	case errors.As(err, &ae):
		ae.Hint = hint
	}
}

// closeFile closes the file being read and releases its reader.
func (s *fileSource) closeFile() error {
	s.rr = nil
	if s.release != nil {
		s.release()
		s.release = nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// open opens file name for reading, from the start or from a checkpoint.
func (s *fileSource) open(name string, at *fileCheckpoint) error {
	osf, err := os.Open(name)
	if err != nil {
		return fileError(name, err)
	}
	s.base.Store(s.sizeBefore(s.next))
	s.pos.Store(0)
	rr, release, err := s.reader(&countedFile{File: osf, pos: &s.pos}, name, at)
	if err != nil {
		osf.Close()
		return fileError(name, err)
	}
	s.f, s.rr, s.release = osf, rr, release
	return nil
}

// reader returns a reader of the records of f, named name, from its start
// or from checkpoint at, and a function that releases its decompressor.
// The file's extension, less a compression's, decides the format when the
// source has none: a .json file is a JSON array if its first non-blank
// byte is '[', else JSON lines.
func (s *fileSource) reader(f *countedFile, name string, at *fileCheckpoint) (records.Reader, func(), error) {
	compression, plain := compressionOf(name)
	r, release, err := s.text(f, compression)
	if err != nil {
		return nil, nil, err
	}
	format := s.format
	if format == "" {
		format = records.InputFormat(plain)
		if strings.EqualFold(filepath.Ext(plain), ".json") {
			br := bufio.NewReaderSize(r, sniffSize)
			if format, err = sniffJSON(br); err != nil {
				release()
				return nil, nil, err
			}
			r = br
		}
	}
	var pos records.Position
	var header []string
	if at != nil && at.Offset > 0 {
		if at.Encoding != s.encoding {
			release()
			return nil, nil, fmt.Errorf("cannot resume at byte %d: the checkpoint was taken reading the file as %s, the encoding is now %s", at.Offset, encodingName(at.Encoding), encodingName(s.encoding))
		}
		if format == records.CSV {
			if header, err = csvHeader(r, at.Offset); err != nil {
				release()
				return nil, nil, err
			}
		}
		release()
		if r, release, err = s.seek(f, compression, at.Offset); err != nil {
			return nil, nil, err
		}
		pos = at.Position
	}
	if format == formatJSON {
		return newJSONArrayReader(r, "file "+name, pos), release, nil
	}
	return records.NewReader(format, r, "file "+name, pos, header), release, nil
}

// text returns what is read of f, decompressed and decoded to UTF-8, and
// a function that releases the decompressor.
func (s *fileSource) text(f io.Reader, compression string) (io.Reader, func(), error) {
	r, release, err := decompress(f, compression)
	if err != nil {
		return nil, nil, err
	}
	return decode(r, s.encoding), release, nil
}

// encodingName names a canonical encoding in an error.
func encodingName(canonical string) string {
	if canonical == "" {
		return encodingUTF8
	}
	return canonical
}

// csvHeader returns the header row of the csv text r, for a reader that
// resumes at byte offset.
func csvHeader(r io.Reader, offset int64) ([]string, error) {
	hr := records.NewCSVReader(r, "", records.Position{}, nil)
	if _, err := hr.Read(); err != nil && !stages.IsPermanent(err) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if hr.Header == nil {
		return nil, fmt.Errorf("cannot resume at byte %d: the file has no csv header", offset)
	}
	return hr.Header, nil
}

// seek returns a reader of the text of f from byte offset on, and a
// function that releases its decompressor. A plain UTF-8 file is seeked
// to the offset; a compressed one, or one in another encoding, whose
// offsets count the bytes of the decompressed and decoded text, is read
// again from its start up to it.
func (s *fileSource) seek(f *countedFile, compression string, offset int64) (io.Reader, func(), error) {
	if compression == compressionNone && s.encoding == "" {
		fi, err := f.Stat()
		if err != nil {
			return nil, nil, err
		}
		if offset > fi.Size() {
			return nil, nil, fmt.Errorf("cannot resume at byte %d: the file has %d bytes (it changed since the run started)", offset, fi.Size())
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return nil, nil, err
		}
		return f, func() {}, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	r, release, err := s.text(f, compression)
	if err != nil {
		return nil, nil, err
	}
	n, err := io.CopyN(io.Discard, r, offset)
	if err != nil {
		release()
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("cannot resume at byte %d of the %s text: it has %d bytes (the file changed since the run started)", offset, textKind(compression, s.encoding), n)
		}
		return nil, nil, err
	}
	return r, release, nil
}

// textKind names the text a checkpoint's offsets count, in an error.
func textKind(compression, encoding string) string {
	switch {
	case compression != compressionNone && encoding != "":
		return "decompressed and decoded"
	case compression != compressionNone:
		return "decompressed"
	}
	return "decoded"
}

// Checkpoint returns the file being read and the position in it after the
// last record returned.
func (s *fileSource) Checkpoint() ([]byte, error) {
	var c fileCheckpoint
	switch {
	case s.resume != nil: // resumed, not read yet
		c = *s.resume
		c.Files = nil
	case s.rr != nil:
		c = fileCheckpoint{File: s.f.Name(), Position: s.rr.Pos(), Encoding: s.encoding}
	case s.next < len(s.files):
		c = fileCheckpoint{File: s.files[s.next]}
	}
	b, err := json.Marshal(c)
	if err != nil || s.listed == nil {
		return b, err
	}
	// The list of files, spliced in as it was encoded last.
	b = b[:len(b)-1]
	if len(b) > 1 {
		b = append(b, ',')
	}
	b = append(b, `"files":`...)
	b = append(b, s.listed...)
	return append(b, '}'), nil
}

// Resume makes the source start at a checkpoint. With the list of files
// it holds, the files before the checkpoint's file in the list count as
// read, the others in the list are read in its order, then the files
// matching the pattern that it does not name, in sorted order. Without one
// (a single path, or a checkpoint of an older version) the files before
// the checkpoint's file in sorted order count as read.
func (s *fileSource) Resume(checkpoint []byte) error {
	var c fileCheckpoint
	if err := json.Unmarshal(checkpoint, &c); err != nil {
		return fmt.Errorf("checkpoint %q: %w", checkpoint, err)
	}
	listed := false
	if c.Files != nil {
		var err error
		if listed, err = s.resumeList(c); err != nil {
			return err
		}
	}
	i := len(s.files) // after the files listed or, without a list, every file
	if listed {
		i = len(c.Files)
	}
	if c.File != "" {
		if i = slices.Index(s.files, c.File); i < 0 {
			return fmt.Errorf("cannot resume in file %s: it is not among the files to read any more", c.File)
		}
		s.resume = &c
	}
	s.next = i
	s.base.Store(s.sizeBefore(i))
	s.pos.Store(0)
	if compression, _ := compressionOf(c.File); compression == compressionNone {
		s.pos.Store(c.Offset) // of the decoded text with an encoding: near enough
	}
	return nil
}

// resumeList makes the files of the source those of checkpoint c, then
// those matching the pattern now that c does not list. If that list is too
// long to keep in a checkpoint it reports false and leaves the files in
// sorted order, as without a list.
func (s *fileSource) resumeList(c fileCheckpoint) (bool, error) {
	i := len(c.Files)
	if c.File != "" {
		if i = slices.Index(c.Files, c.File); i < 0 {
			return false, fmt.Errorf("checkpoint: file %s is not in its list of files", c.File)
		}
	}
	now := make(map[string]bool, len(s.files))
	for _, name := range s.files {
		now[name] = true
	}
	for _, name := range c.Files[i:] {
		switch {
		case now[name]:
		case name == c.File:
			return false, fmt.Errorf("cannot resume in file %s: it is not among the files to read any more", name)
		default:
			return false, fmt.Errorf("cannot resume: file %s, which the run had still to read, is not among the files to read any more", name)
		}
	}
	listed := make(map[string]bool, len(c.Files))
	for _, name := range c.Files {
		listed[name] = true
	}
	sorted := s.files
	files := slices.Clone(c.Files)
	for _, name := range sorted {
		if !listed[name] {
			files = append(files, name)
		}
	}
	if err := s.setFiles(files, true); err != nil {
		return false, err
	}
	if s.listed == nil { // too long to keep
		return false, s.setFiles(sorted, false)
	}
	return true, nil
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
	s.next = len(s.files)
	if s.f == nil {
		return nil
	}
	return s.closeFile()
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
