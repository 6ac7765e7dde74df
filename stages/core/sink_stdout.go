package core

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
)

func stdoutSpec() stages.Spec {
	return stages.Spec{
		Name:    "stdout",
		Summary: "Write records to standard output as JSON lines, CSV or raw lines",
		Doc: `Writes each record to standard output, flushed at the end of every ` +
			`batch. jsonl writes the payload as one line (compacted if it spans ` +
			`lines); csv writes a header line once, then one row per record in ` +
			`columns order (default: the sorted keys of the first record; other ` +
			`fields are left out, missing ones are empty; numbers and booleans as ` +
			`in JSON, null as empty, arrays and objects as JSON). A payload that is ` +
			`not valid JSON, or in csv a record that is not an object, goes to the ` +
			`dead-letter stream without holding up the rest of its batch.

Example:

    - name: print
      sink: stdout
      with:
        format: csv
        columns: [id, customer, amount]`,
		Params: []stages.Param{
			{Name: "format", Type: stages.TypeString, Default: records.JSONL, Enum: []string{records.JSONL, records.CSV, records.Lines}, Doc: "Output format: jsonl (one JSON record per line), csv, or lines (each payload as it is, one per line)."},
			records.ColumnsParam,
		},
		Check:   checkStdout,
		NewSink: newStdoutSink,
	}
}

func checkStdout(p stages.Params) error { return records.CheckColumns(p, p.String("format")) }

// stdoutSink writes to the process's standard output.
type stdoutSink struct {
	mu  sync.Mutex
	out io.Writer
	bw  *bufio.Writer
	rw  *records.Writer
}

var _ stages.Sink = (*stdoutSink)(nil)

func newStdoutSink(p stages.Params, info stages.Info) (stages.Sink, error) {
	if err := checkStdout(p); err != nil {
		return nil, err
	}
	out := info.Stdout
	if out == nil {
		out = os.Stdout
	}
	format := p.String("format")
	if format == "" {
		format = records.JSONL
	}
	bw := bufio.NewWriterSize(out, records.WriteBufferSize)
	return &stdoutSink{
		out: out,
		bw:  bw,
		rw:  records.NewWriter(format, bw, p.Strings("columns"), false),
	}, nil
}

func (s *stdoutSink) Write(_ context.Context, batch []*stages.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	header := s.rw.Header
	err := records.WriteBatch(s.rw, s.bw, batch)
	if _, ok := err.(*stages.BatchError); err == nil || ok {
		return err
	}
	// Drop what is buffered so that the writer is usable again; a retry
	// writes the batch anew.
	s.bw.Reset(s.out)
	s.rw.Header = header
	return fmt.Errorf("stdout: %w", err)
}

// Close flushes; standard output stays open.
func (s *stdoutSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	return nil
}
