package stages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

func stdinSpec() Spec {
	return Spec{
		Name:    "stdin",
		Summary: "Read records from standard input",
		Doc: `Reads the process's standard input until it ends, in the same formats ` +
			`as the file source (default jsonl). A blocked read does not hold up ` +
			`shutdown: the source reads in a goroutine of its own, which ends at the ` +
			`end of the input or with the process. Standard input cannot be read ` +
			`again, so a restarted run does not resume where a killed one stopped.

Example:

    - name: read
      source: stdin
      with:
        format: csv`,
		Params: []Param{
			{Name: "format", Type: TypeString, Default: formatJSONL, Enum: []string{formatJSONL, formatCSV, formatLines}, Doc: "Record format: " + formatDoc + "."},
		},
		NewSource: newStdinSource,
	}
}

// stdinBuffer is how many records the reading goroutine may read ahead.
const stdinBuffer = 64

// stdinSource hands Read the records that its goroutine reads, so that Read
// can return when ctx is done while the goroutine is blocked reading.
type stdinSource struct {
	rr    recordReader
	start sync.Once
	ch    chan stdinRead
	done  chan struct{} // closed by Close: the goroutine stops sending
	close sync.Once
	err   error // the error that ended the input, returned by every later Read
}

type stdinRead struct {
	m   *Message
	err error
}

var _ Source = (*stdinSource)(nil)

func newStdinSource(p Params, info Info) (Source, error) {
	in := info.Stdin
	if in == nil {
		in = os.Stdin
	}
	format := p.String("format")
	if format == "" {
		format = formatJSONL
	}
	return &stdinSource{
		rr:   newRecordReader(format, in, "stdin", readerPos{}, nil),
		ch:   make(chan stdinRead, stdinBuffer),
		done: make(chan struct{}),
	}, nil
}

// run reads until the input ends or fails, or Close is called. It is
// started by the first Read, so that a source built only to validate a
// pipeline reads nothing.
func (s *stdinSource) run() {
	for {
		m, err := s.rr.read()
		select {
		case s.ch <- stdinRead{m, err}:
		case <-s.done:
			return
		}
		if err != nil && (m == nil || !IsPermanent(err)) {
			close(s.ch)
			return
		}
	}
}

func (s *stdinSource) Read(ctx context.Context) (*Message, error) {
	if s.err != nil {
		return nil, s.err
	}
	select {
	case <-s.done:
		return nil, errSourceClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.start.Do(func() { go s.run() })
	select {
	case r, ok := <-s.ch:
		if !ok { // the end was taken by an earlier Read
			return nil, io.EOF
		}
		if r.err == nil || (r.m != nil && IsPermanent(r.err)) {
			return r.m, r.err
		}
		if errors.Is(r.err, io.EOF) {
			s.err = io.EOF
		} else {
			s.err = fmt.Errorf("stdin: %w", r.err)
		}
		return nil, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, errSourceClosed
	}
}

// Close stops the reading goroutine at its next record. A goroutine blocked
// reading the input ends when the input does or with the process: stdin is
// not the source's to close.
func (s *stdinSource) Close(context.Context) error {
	s.close.Do(func() { close(s.done) })
	return nil
}
