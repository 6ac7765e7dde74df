package core

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestStdinSource(t *testing.T) {
	tests := []struct {
		name   string
		format string
		in     string
		want   []stagetest.Read
	}{
		{"jsonl default", "", "{\"a\":1}\n\n{\"b\":2}\n", []stagetest.Read{{Payload: `{"a":1}`, Err: nil}, {Payload: `{"b":2}`, Err: nil}}},
		{"lines", "lines", "x\r\ny", []stagetest.Read{{Payload: "x", Err: nil}, {Payload: "y", Err: nil}}},
		{"csv", "csv", "k,v\n1,2\n3\n4,5\n", []stagetest.Read{{Payload: `{"k":"1","v":"2"}`, Err: nil}, {Payload: "3", Err: stages.Permanent(errors.New("stdin line 3: row has 1 fields, header has 2"))}, {Payload: `{"k":"4","v":"5"}`, Err: nil}}},
		{"empty", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := map[string]any{}
			if tt.format != "" {
				raw["format"] = tt.format
			}
			src := stagetest.NewSource(t, "stdin", raw, stages.Info{Stdin: bytes.NewReader([]byte(tt.in))})
			got := stagetest.ReadAll(t, src)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i, w := range tt.want {
				g := got[i]
				if g.Payload != w.Payload || (g.Err == nil) != (w.Err == nil) ||
					(w.Err != nil && (g.Err.Error() != w.Err.Error() || !stages.IsPermanent(g.Err))) {
					t.Errorf("record %d: got %q, %v; want %q, %v", i, g.Payload, g.Err, w.Payload, w.Err)
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
	src := stagetest.NewSource(t, "stdin", nil, stages.Info{Stdin: pr})
	ctx := context.Background()

	go pw.Write([]byte("{\"n\":1}\n"))
	m, err := src.Read(ctx)
	if err != nil || stagetest.PayloadOf(t, m) != `{"n":1}` {
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
	if err != nil || stagetest.PayloadOf(t, m) != `{"n":2}` {
		t.Fatalf("got %v, %v", m, err)
	}
	if _, err := src.Read(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestStdinSourceReadError(t *testing.T) {
	boom := errors.New("boom")
	src := stagetest.NewSource(t, "stdin", map[string]any{"format": "lines"}, stages.Info{Stdin: io.MultiReader(bytes.NewReader([]byte("a\n")), &errReader{boom})})
	var got []string
	var err error
	for {
		var m *stages.Message
		if m, err = src.Read(context.Background()); err != nil {
			break
		}
		got = append(got, stagetest.PayloadOf(t, m))
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
	src := stagetest.NewSource(t, "stdin", nil, stages.Info{Stdin: pr})
	if err := src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := src.Read(context.Background()); !errors.Is(err, stages.ErrSourceClosed) {
		t.Fatalf("read after close: %v", err)
	}
}
