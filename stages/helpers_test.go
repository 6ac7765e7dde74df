package stages

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// lookup returns a built-in spec from a fresh registry.
func lookup(t *testing.T, role Role, name string) *Spec {
	t.Helper()
	s, err := NewRegistry().LookupRole(role, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// parse converts raw parameters through the spec and fails on any error.
func parse(t *testing.T, s *Spec, raw map[string]any) Params {
	t.Helper()
	p, errs := s.ParseParams(raw)
	if len(errs) > 0 {
		t.Fatalf("%s %s: params %v: %v", s.Role(), s.Name, raw, errors.Join(errs...))
	}
	return p
}

func newTestSource(t *testing.T, name string, raw map[string]any, info Info) Source {
	t.Helper()
	s := lookup(t, RoleSource, name)
	src, err := s.NewSource(parse(t, s, raw), info)
	if err != nil {
		t.Fatalf("source %s: %v", name, err)
	}
	t.Cleanup(func() { src.Close(context.Background()) })
	return src
}

func newTestTransform(t *testing.T, name string, raw map[string]any) Transform {
	t.Helper()
	s := lookup(t, RoleTransform, name)
	tr, err := s.NewTransform(parse(t, s, raw), Info{})
	if err != nil {
		t.Fatalf("transform %s: %v", name, err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr
}

func newTestSink(t *testing.T, name string, raw map[string]any, info Info) Sink {
	t.Helper()
	s := lookup(t, RoleSink, name)
	sk, err := s.NewSink(parse(t, s, raw), info)
	if err != nil {
		t.Fatalf("sink %s: %v", name, err)
	}
	t.Cleanup(func() { sk.Close(context.Background()) })
	return sk
}

// read is one result of Source.Read.
type read struct {
	payload string
	err     error
}

// readAll reads src until io.EOF or an error that is not permanent, and
// returns every payload with the error that came with it.
func readAll(t *testing.T, src Source) []read {
	t.Helper()
	var out []read
	for i := 0; ; i++ {
		if i > 1e6 {
			t.Fatal("source does not end")
		}
		m, err := src.Read(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil && !IsPermanent(err) {
			t.Fatalf("read %d: %v", i, err)
		}
		out = append(out, read{payload: payloadOf(t, m), err: err})
	}
}

// payloads reads src to the end and fails on any error.
func payloads(t *testing.T, src Source) []string {
	t.Helper()
	var out []string
	for _, r := range readAll(t, src) {
		if r.err != nil {
			t.Fatalf("record %q: %v", r.payload, r.err)
		}
		out = append(out, r.payload)
	}
	return out
}

func payloadOf(t *testing.T, m *Message) string {
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

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func msgs(payloads ...string) []*Message {
	out := make([]*Message, len(payloads))
	for i, p := range payloads {
		out[i] = NewMessage([]byte(p))
	}
	return out
}
