package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

var formatDoc = "jsonl (one JSON record per non-blank line, passed on undecoded), " +
	"csv (a header row, then one object of strings per row) or lines (each line, blank ones included, as raw bytes)"

func fileSourceSpec() Spec {
	return Spec{
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
			`and reading goes on. Lines of any length work. The source ends after the ` +
			`last file.

Example:

    - name: read
      source: file
      with:
        path: data/orders-*.csv`,
		Params: []Param{
			{Name: "path", Type: TypeString, Required: true, Doc: "A file path, or a glob pattern matching the files to read."},
			{Name: "format", Type: TypeString, Enum: []string{formatJSONL, formatCSV, formatLines}, Doc: "Record format: " + formatDoc + "; default inferred from each file's extension."},
		},
		NewSource: newFileSource,
	}
}

// fileSource reads its files one after another.
type fileSource struct {
	format string // "" infers from each file's extension
	files  []string
	next   int // index in files of the next file to open
	f      *os.File
	rr     recordReader
}

var _ Source = (*fileSource)(nil)

func newFileSource(p Params, _ Info) (Source, error) {
	path := p.String("path")
	if path == "" {
		return nil, paramError("path", "must not be empty")
	}
	files, err := expandPath(path)
	if err != nil {
		return nil, err
	}
	return &fileSource{format: p.String("format"), files: files}, nil
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

func (s *fileSource) Read(ctx context.Context) (*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for {
		if s.rr == nil {
			if s.next == len(s.files) {
				return nil, io.EOF
			}
			if err := s.open(s.files[s.next]); err != nil {
				return nil, err
			}
			s.next++
		}
		m, err := s.rr.read()
		if err == nil || (m != nil && IsPermanent(err)) {
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

func (s *fileSource) open(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fileError(name, err)
	}
	format := s.format
	if format == "" {
		format = inputFormat(name)
	}
	s.f = f
	s.rr = newRecordReader(format, f, "file "+name)
	return nil
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
