package stages

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

const (
	modeOverwrite = "overwrite"
	modeAppend    = "append"
)

func fileSinkSpec() Spec {
	return Spec{
		Name:    "file",
		Summary: "Write records to a file as JSON lines, CSV or raw lines",
		Doc: `Writes records to path, creating its directory. overwrite empties the ` +
			`file when the run starts; append adds to it (a CSV file that has a ` +
			`header keeps it and its column order). The format defaults to csv for ` +
			`a .csv path, lines for .txt and .log, and jsonl otherwise, written as ` +
			`by the stdout sink. Each ` +
			`batch is handed to the operating system before it is acknowledged, so ` +
			`a killed process loses nothing acknowledged; the file is synced to disk ` +
			`when the sink closes. A batch that fails to write is cut off the file ` +
			`again, so a retry neither tears nor repeats lines. Delivery is ` +
			`at-least-once: records of a batch redelivered after a crash appear ` +
			`twice. The sink must be the file's only writer: give each process its ` +
			`own path.

Example:

    - name: write
      sink: file
      with:
        path: out/big-orders.jsonl
        mode: append`,
		Params: []Param{
			{Name: "path", Type: TypeString, Required: true, Doc: "The file to write."},
			{Name: "format", Type: TypeString, Enum: []string{formatJSONL, formatCSV, formatLines}, Doc: "Output format: jsonl, csv, or lines (each payload as it is, one per line); default csv for a .csv path, lines for .txt/.log, else jsonl."},
			{Name: "mode", Type: TypeString, Default: modeOverwrite, Enum: []string{modeOverwrite, modeAppend}, Doc: "overwrite empties the file at the start of the run; append adds to it."},
			columnsParam,
		},
		Check:   checkFileSink,
		NewSink: newFileSink,
	}
}

func checkFileSink(p Params) error {
	if p.String("path") == "" {
		return paramError("path", "must not be empty")
	}
	return checkColumns(p, fileSinkFormat(p))
}

func fileSinkFormat(p Params) string {
	if f := p.String("format"); f != "" {
		return f
	}
	return outputFormat(p.String("path"))
}

// fileSink appends batches to one file. size is the file's length after
// the last successful Write: a failed Write truncates the file back to it.
type fileSink struct {
	path string
	mu   sync.Mutex
	f    *os.File // nil once closed
	cw   countingWriter
	bw   *bufio.Writer
	rw   *recordWriter
	size int64
}

var _ Sink = (*fileSink)(nil)

// countingWriter counts the bytes that reached w.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func newFileSink(p Params, _ Info) (Sink, error) {
	if err := checkFileSink(p); err != nil {
		return nil, err
	}
	path := p.String("path")
	format := fileSinkFormat(p)
	columns := p.Strings("columns")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fileError(filepath.Dir(path), err)
	}
	// O_APPEND in both modes, so that writes after a truncation land at the
	// new end of the file.
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if p.String("mode") != modeAppend {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fileError(path, err)
	}
	s := &fileSink{path: path, f: f}
	header, err := s.prepare(format)
	if err != nil {
		f.Close()
		return nil, err
	}
	if header != nil {
		if columns != nil && !slices.Equal(columns, header) {
			f.Close()
			return nil, paramError("columns", "%v differ from the header %v of file %s", columns, header, path)
		}
		columns = header
	}
	s.cw = countingWriter{w: f, n: s.size}
	s.bw = bufio.NewWriterSize(&s.cw, writeBufferSize)
	s.rw = newRecordWriter(format, s.bw, columns, header != nil)
	return s, nil
}

// prepare looks at what an appended-to file holds: it sets s.size, ends a
// last line cut short by a crash, and for csv returns the existing header.
func (s *fileSink) prepare(format string) (header []string, err error) {
	fi, err := s.f.Stat()
	if err != nil {
		return nil, fileError(s.path, err)
	}
	s.size = fi.Size()
	if s.size == 0 {
		return nil, nil
	}
	r, err := os.Open(s.path)
	if err != nil {
		return nil, fileError(s.path, err)
	}
	defer r.Close()
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, s.size-1); err != nil {
		return nil, fileError(s.path, err)
	}
	if last[0] != '\n' {
		if _, err := s.f.Write([]byte{'\n'}); err != nil {
			return nil, fileError(s.path, err)
		}
		s.size++
	}
	if format != formatCSV {
		return nil, nil
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err = cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil // only blank lines
	}
	if err != nil {
		return nil, fmt.Errorf("file %s: read the csv header: %w", s.path, err)
	}
	return header, nil
}

func (s *fileSink) Write(_ context.Context, batch []*Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return fmt.Errorf("file %s: %w", s.path, errSinkClosed)
	}
	header := s.rw.header
	err := writeBatch(s.rw, s.bw, batch)
	if _, ok := err.(*BatchError); err == nil || ok {
		s.size = s.cw.n
		return err
	}
	// Take back what part of the batch reached the file, so that the retry
	// of the batch neither tears nor repeats lines.
	s.bw.Reset(&s.cw)
	s.rw.header = header
	if terr := s.f.Truncate(s.size); terr != nil {
		return fmt.Errorf("file %s: %w (truncating back failed too: %v)", s.path, err, terr)
	}
	s.cw.n = s.size
	return fileError(s.path, err)
}

// Close flushes, syncs the file to disk and closes it. Closing again does
// nothing.
func (s *fileSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.bw.Flush()
	if serr := s.f.Sync(); err == nil {
		err = serr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		return fileError(s.path, err)
	}
	return nil
}
