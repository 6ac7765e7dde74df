package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
)

func stdinSpec() stages.Spec {
	return stages.Spec{
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
		Params: []stages.Param{
			{Name: "format", Type: stages.TypeString, Default: records.JSONL, Enum: []string{records.JSONL, records.CSV, records.Lines}, Doc: "Record format: " + records.Doc + "."},
		},
		NewSource: newStdinSource,
	}
}

// stdinBuffer is how many records the reading goroutine may read ahead.
const stdinBuffer = 64

// stdinSource hands Read the records that its goroutine reads, so that Read
// can return when ctx is done while the goroutine is blocked reading.
type stdinSource struct {
	rr    records.Reader
	start sync.Once
	ch    chan stdinRead
	done  chan struct{} // closed by Close: the goroutine stops sending
	close sync.Once
	err   error // the error that ended the input, returned by every later Read
}

type stdinRead struct {
	m   *stages.Message
	err error
}

var _ stages.Source = (*stdinSource)(nil)

func newStdinSource(p stages.Params, info stages.Info) (stages.Source, error) {
	in := info.Stdin
	if in == nil {
		in = os.Stdin
	}
	format := p.String("format")
	if format == "" {
		format = records.JSONL
	}
	return &stdinSource{
		rr:   records.NewReader(format, in, "stdin", records.Position{}, nil),
		ch:   make(chan stdinRead, stdinBuffer),
		done: make(chan struct{}),
	}, nil
}

// run reads until the input ends or fails, or Close is called. It is
// started by the first Read, so that a source built only to validate a
// pipeline reads nothing.
func (s *stdinSource) run() {
	for {
		m, err := s.rr.Read()
		select {
		case s.ch <- stdinRead{m, err}:
		case <-s.done:
			return
		}
		if err != nil && (m == nil || !stages.IsPermanent(err)) {
			close(s.ch)
			return
		}
	}
}

func (s *stdinSource) Read(ctx context.Context) (*stages.Message, error) {
	if s.err != nil {
		return nil, s.err
	}
	select {
	case <-s.done:
		return nil, stages.ErrSourceClosed
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
		if r.err == nil || (r.m != nil && stages.IsPermanent(r.err)) {
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
		return nil, stages.ErrSourceClosed
	}
}

// Close stops the reading goroutine at its next record. A goroutine blocked
// reading the input ends when the input does or with the process: stdin is
// not the source's to close.
func (s *stdinSource) Close(context.Context) error {
	s.close.Do(func() { close(s.done) })
	return nil
}
