// Command plugin is a sluice Go plugin: built with
//
//	go build -buildmode=plugin -o examples/plugin/redact.so ./examples/plugin
//
// it adds the transform "redact" and the sink "logfmt" to any sluice
// binary built from the same sluice sources by the same Go, when a
// pipeline lists it under plugins: or sluice is run with --plugin.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/sluicehq/sluice/stages"
)

func init() {
	stages.MustRegister(stages.Spec{
		Name: "redact",
		// It keeps nothing from one record to the next: sluice may run it
		// fused with the stages around it, with no stream between them.
		Stateless: true,
		Summary:   "Replaces chosen fields of each record by a hash or a mask",
		Doc: "Each field named in fields is replaced, when the record has it, by the first 12 hex digits of " +
			"the SHA-256 of its value (mode hash: equal values still match, across records) or by \"***\" (mode mask). " +
			"A record that is not a JSON object is a dead letter.",
		Params: []stages.Param{
			{Name: "fields", Type: stages.TypeStringList, Required: true, Doc: "Top-level fields to redact."},
			{Name: "mode", Type: stages.TypeString, Default: "hash", Enum: []string{"hash", "mask"}, Doc: "hash or mask."},
		},
		NewTransform: func(p stages.Params, _ stages.Info) (stages.Transform, error) {
			return &redact{fields: p.Strings("fields"), mask: p.String("mode") == "mask"}, nil
		},
	})
	stages.MustRegister(stages.Spec{
		Name:    "logfmt",
		Summary: "Writes each record as one logfmt line to standard output",
		Doc: "Each record is written as key=value pairs in the order of keys, values quoted when needed, " +
			"one line per record. Lines are written when Write returns: at least once.",
		Params: []stages.Param{
			{Name: "keys", Type: stages.TypeStringList, Required: true, Doc: "The fields to write, in order; a missing one is written empty."},
		},
		NewSink: func(p stages.Params, info stages.Info) (stages.Sink, error) {
			out := info.Stdout
			if out == nil {
				out = os.Stdout
			}
			return &logfmtSink{keys: p.Strings("keys"), w: bufio.NewWriter(out)}, nil
		},
	})
}

// main is not run: a plugin's init functions are what it brings.
func main() {}

type redact struct {
	fields []string
	mask   bool
}

func (r *redact) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	for _, f := range r.fields {
		v, ok := rec[f]
		if !ok {
			continue
		}
		if r.mask {
			rec[f] = "***"
			continue
		}
		sum := sha256.Sum256(fmt.Append(nil, v))
		rec[f] = hex.EncodeToString(sum[:6])
	}
	in.SetValue(rec)
	return append(out, in), nil
}

func (r *redact) Close(context.Context) error { return nil }

type logfmtSink struct {
	keys []string
	mu   sync.Mutex
	w    *bufio.Writer
}

func (s *logfmtSink) Write(_ context.Context, batch []*stages.Message) error {
	errs := make([]error, len(batch))
	failed := false
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range batch {
		rec, err := m.Record()
		if err != nil {
			errs[i], failed = err, true
			continue
		}
		line := make([]byte, 0, 128)
		for j, k := range s.keys {
			if j > 0 {
				line = append(line, ' ')
			}
			line = append(line, k...)
			line = append(line, '=')
			line = appendValue(line, rec[k])
		}
		line = append(line, '\n')
		if _, err := s.w.Write(line); err != nil {
			return err
		}
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	if failed {
		return &stages.BatchError{Errs: errs}
	}
	return nil
}

// appendValue writes v bare when it has no space, quote or equals sign,
// else quoted.
func appendValue(b []byte, v any) []byte {
	var s string
	switch x := v.(type) {
	case nil:
		return b
	case string:
		s = x
	default:
		s = fmt.Sprint(x)
	}
	if s == "" || slices.ContainsFunc([]byte(s), func(c byte) bool { return c <= ' ' || c == '"' || c == '=' }) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func (s *logfmtSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}
