// Package stagetest holds what the tests of the stage type families share:
// building a stage of a type from raw parameters, reading a source to its
// end, shared cases for sinks and transforms, a NATS server for the types
// that keep state in NATS.
//
// A test package sets [Register] once, from an init function, to the
// Register function of the types it tests; the helpers look types up in a
// fresh registry holding those.
package stagetest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// Register adds the types under test to a registry; the test package sets
// it.
var Register func(*stages.Registry) error

// NewRegistry returns a fresh registry holding the types [Register] adds.
func NewRegistry() *stages.Registry {
	r := stages.NewRegistry()
	if Register == nil {
		panic("stagetest: the test package did not set stagetest.Register")
	}
	if err := Register(r); err != nil {
		panic(err)
	}
	return r
}

// Lookup returns the spec of a type under test from a fresh registry.
func Lookup(t *testing.T, role stages.Role, name string) *stages.Spec {
	t.Helper()
	s, err := NewRegistry().LookupRole(role, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Parse converts raw parameters through the spec and fails on any error.
func Parse(t *testing.T, s *stages.Spec, raw map[string]any) stages.Params {
	t.Helper()
	p, errs := s.ParseParams(raw)
	if len(errs) > 0 {
		t.Fatalf("%s %s: params %v: %v", s.Role(), s.Name, raw, errors.Join(errs...))
	}
	return p
}

// NewSource builds the source of type name from raw parameters; the test
// closes it at its end.
func NewSource(t *testing.T, name string, raw map[string]any, info stages.Info) stages.Source {
	t.Helper()
	s := Lookup(t, stages.RoleSource, name)
	src, err := s.NewSource(Parse(t, s, raw), info)
	if err != nil {
		t.Fatalf("source %s: %v", name, err)
	}
	t.Cleanup(func() { src.Close(context.Background()) })
	return src
}

// NewTransform builds the transform of type name from raw parameters;
// the test closes it at its end.
func NewTransform(t *testing.T, name string, raw map[string]any) stages.Transform {
	t.Helper()
	return NewInfoTransform(t, name, raw, stages.Info{})
}

// NewSink builds the sink of type name from raw parameters; the test
// closes it at its end.
func NewSink(t *testing.T, name string, raw map[string]any, info stages.Info) stages.Sink {
	t.Helper()
	s := Lookup(t, stages.RoleSink, name)
	sk, err := s.NewSink(Parse(t, s, raw), info)
	if err != nil {
		t.Fatalf("sink %s: %v", name, err)
	}
	t.Cleanup(func() { sk.Close(context.Background()) })
	return sk
}

// Read is one result of Source.Read.
type Read struct {
	Payload string
	Err     error
}

// ReadAll reads src until io.EOF or an error that is not permanent, and
// returns every payload with the error that came with it.
func ReadAll(t *testing.T, src stages.Source) []Read {
	t.Helper()
	var out []Read
	for i := 0; ; i++ {
		if i > 1e6 {
			t.Fatal("source does not end")
		}
		m, err := src.Read(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil && !stages.IsPermanent(err) {
			t.Fatalf("read %d: %v", i, err)
		}
		out = append(out, Read{Payload: PayloadOf(t, m), Err: err})
	}
}

// Payloads reads src to the end and fails on any error.
func Payloads(t *testing.T, src stages.Source) []string {
	t.Helper()
	var out []string
	for _, r := range ReadAll(t, src) {
		if r.Err != nil {
			t.Fatalf("record %q: %v", r.Payload, r.Err)
		}
		out = append(out, r.Payload)
	}
	return out
}

// PayloadOf returns the payload of m, failing the test on an error.
func PayloadOf(t *testing.T, m *stages.Message) string {
	t.Helper()
	if m == nil {
		t.Fatal("nil message")
	}
	b, err := m.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// WriteFile writes content to name in dir and returns its path.
func WriteFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Msgs returns a message for each payload.
func Msgs(payloads ...string) []*stages.Message {
	out := make([]*stages.Message, len(payloads))
	for i, p := range payloads {
		out[i] = stages.NewMessage([]byte(p))
	}
	return out
}

// Process runs one payload through tr and returns the output payloads.
func Process(t *testing.T, tr stages.Transform, payload string) ([]string, error) {
	t.Helper()
	in := stages.NewMessage([]byte(payload))
	out, err := tr.Process(context.Background(), in, nil)
	var got []string
	for _, m := range out {
		got = append(got, PayloadOf(t, m))
	}
	return got, err
}

// Outcome names an error's class: "ok", "permanent" or "retry".
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case stages.IsPermanent(err):
		return "permanent"
	}
	return "retry"
}

// ContainsAll reports whether s contains every one of subs.
func ContainsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
