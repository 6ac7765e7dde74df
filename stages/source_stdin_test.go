package stages

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"
)

func TestStdinSource(t *testing.T) {
	tests := []struct {
		name   string
		format string
		in     string
		want   []read
	}{
		{"jsonl default", "", "{\"a\":1}\n\n{\"b\":2}\n", []read{{`{"a":1}`, nil}, {`{"b":2}`, nil}}},
		{"lines", "lines", "x\r\ny", []read{{"x", nil}, {"y", nil}}},
		{"csv", "csv", "k,v\n1,2\n3\n4,5\n", []read{{`{"k":"1","v":"2"}`, nil}, {"3", Permanent(errors.New("stdin line 3: row has 1 fields, header has 2"))}, {`{"k":"4","v":"5"}`, nil}}},
		{"empty", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := map[string]any{}
			if tt.format != "" {
				raw["format"] = tt.format
			}
			src := newTestSource(t, "stdin", raw, Info{Stdin: bytes.NewReader([]byte(tt.in))})
			got := readAll(t, src)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.payload != w.payload || (g.err == nil) != (w.err == nil) ||
					(w.err != nil && (g.err.Error() != w.err.Error() || !IsPermanent(g.err))) {
					t.Errorf("record %d: got %q, %v; want %q, %v", i, g.payload, g.err, w.payload, w.err)
				}
			}
			if _, err := src.Read(context.Background()); !errors.Is(err, io.EOF) {
				t.Fatalf("read after the end: %v", err)
			}
		})
	}
}

func TestStdinSourceBlockingRead(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	src := newTestSource(t, "stdin", nil, Info{Stdin: pr})
	ctx := context.Background()

	go pw.Write([]byte("{\"n\":1}\n"))
	m, err := src.Read(ctx)
	if err != nil || payloadOf(t, m) != `{"n":1}` {
		t.Fatalf("got %v, %v", m, err)
	}

	// Nothing to read: a cancelled Read returns at once.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := src.Read(cctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not return after cancel")
	}

	// The goroutine still reads: nothing is lost by the cancelled Read.
	go func() {
		pw.Write([]byte("{\"n\":2}\n"))
		pw.Close()
	}()
	m, err = src.Read(ctx)
	if err != nil || payloadOf(t, m) != `{"n":2}` {
		t.Fatalf("got %v, %v", m, err)
	}
	if _, err := src.Read(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestStdinSourceReadError(t *testing.T) {
	boom := errors.New("boom")
	src := newTestSource(t, "stdin", map[string]any{"format": "lines"}, Info{Stdin: io.MultiReader(bytes.NewReader([]byte("a\n")), &errReader{boom})})
	var got []string
	var err error
	for {
		var m *Message
		if m, err = src.Read(context.Background()); err != nil {
			break
		}
		got = append(got, payloadOf(t, m))
	}
	if !reflect.DeepEqual(got, []string{"a"}) || !errors.Is(err, boom) || err.Error() != "stdin: boom" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err2 := src.Read(context.Background()); err2 != err {
		t.Fatalf("read after the error: %v", err2)
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestStdinSourceClose(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	src := newTestSource(t, "stdin", nil, Info{Stdin: pr})
	if err := src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := src.Read(context.Background()); !errors.Is(err, errSourceClosed) {
		t.Fatalf("read after close: %v", err)
	}
}
