package stages

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
)

func stdoutSpec() Spec {
	return Spec{
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
		Params: []Param{
			{Name: "format", Type: TypeString, Default: formatJSONL, Enum: []string{formatJSONL, formatCSV, formatLines}, Doc: "Output format: jsonl (one JSON record per line), csv, or lines (each payload as it is, one per line)."},
			columnsParam,
		},
		Check:   checkStdout,
		NewSink: newStdoutSink,
	}
}

var columnsParam = Param{
	Name: "columns", Type: TypeStringList,
	Doc: "CSV column order, with format csv; default the sorted keys of the first record written.",
}

func checkStdout(p Params) error { return checkColumns(p, p.String("format")) }

// checkColumns validates the columns parameter of a sink writing format.
func checkColumns(p Params, format string) error {
	if !p.Has("columns") {
		return nil
	}
	cols := p.Strings("columns")
	if format != formatCSV {
		return paramError("columns", "only applies to format csv (format is %s)", format)
	}
	if len(cols) == 0 {
		return paramError("columns", "must name at least one column")
	}
	seen := make(map[string]bool, len(cols))
	for _, c := range cols {
		if seen[c] {
			return paramError("columns", "repeats %q", c)
		}
		seen[c] = true
	}
	return nil
}

// stdoutSink writes to the process's standard output.
type stdoutSink struct {
	mu  sync.Mutex
	out io.Writer
	bw  *bufio.Writer
	rw  *recordWriter
}

var _ Sink = (*stdoutSink)(nil)

func newStdoutSink(p Params, info Info) (Sink, error) {
	if err := checkStdout(p); err != nil {
		return nil, err
	}
	out := info.Stdout
	if out == nil {
		out = os.Stdout
	}
	format := p.String("format")
	if format == "" {
		format = formatJSONL
	}
	bw := bufio.NewWriterSize(out, writeBufferSize)
	return &stdoutSink{
		out: out,
		bw:  bw,
		rw:  newRecordWriter(format, bw, p.Strings("columns"), false),
	}, nil
}

func (s *stdoutSink) Write(_ context.Context, batch []*Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	header := s.rw.header
	err := writeBatch(s.rw, s.bw, batch)
	if _, ok := err.(*BatchError); err == nil || ok {
		return err
	}
	// Drop what is buffered so that the writer is usable again; a retry
	// writes the batch anew.
	s.bw.Reset(s.out)
	s.rw.header = header
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
