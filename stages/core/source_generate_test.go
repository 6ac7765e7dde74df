package core

import (
	"context"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func TestGenerate(t *testing.T) {
	tests := []struct {
		name string
		raw  map[string]any
		want []string
	}{
		{"default template", map[string]any{"count": 3}, []string{`{"seq":0}`, `{"seq":1}`, `{"seq":2}`}},
		{"template with seq", map[string]any{"count": 2, "template": `{"id": seq * 10, "even": seq % 2 == 0, "name": "n" + string(seq)}`},
			[]string{`{"even":true,"id":0,"name":"n0"}`, `{"even":false,"id":10,"name":"n1"}`}},
		{"scalar records", map[string]any{"count": "2", "template": "seq"}, []string{"0", "1"}},
		{"count from yaml float", map[string]any{"count": 1.0}, []string{`{"seq":0}`}},
		{"fast rate", map[string]any{"count": 3, "rate": 1e6}, []string{`{"seq":0}`, `{"seq":1}`, `{"seq":2}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := stagetest.NewSource(t, "generate", tt.raw, stages.Info{})
			if got := stagetest.Payloads(t, src); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			// It stays at the end.
			if _, err := src.Read(context.Background()); !errors.Is(err, io.EOF) {
				t.Fatalf("read after the end: %v", err)
			}
		})
	}
}

func TestGenerateNow(t *testing.T) {
	before := time.Now()
	src := stagetest.NewSource(t, "generate", map[string]any{"count": 1, "template": `{"at": now()}`}, stages.Info{})
	m, err := src.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := m.Record()
	if err != nil {
		t.Fatal(err)
	}
	at, ok := rec["at"].(time.Time)
	if !ok || at.Before(before) || at.After(time.Now()) {
		t.Fatalf("now() gave %#v, want a time from the test", rec["at"])
	}
	// The payload carries it as an RFC 3339 string.
	v, err := stages.DecodeJSON([]byte(stagetest.PayloadOf(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339Nano, v.(map[string]any)["at"].(string)); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateUnbounded(t *testing.T) {
	src := stagetest.NewSource(t, "generate", map[string]any{"template": "seq"}, stages.Info{})
	for i := range 10000 {
		m, err := src.Read(context.Background())
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if v, _ := m.Value(); v != i {
			t.Fatalf("read %d: got %v", i, v)
		}
	}
}

func TestGenerateRate(t *testing.T) {
	const rate, n = 1000.0, 50
	src := stagetest.NewSource(t, "generate", map[string]any{"count": n, "rate": rate}, stages.Info{})
	start := time.Now()
	if got := len(stagetest.Payloads(t, src)); got != n {
		t.Fatalf("got %d records, want %d", got, n)
	}
	// Record i is due at i/rate: the last one no sooner than (n-1)/rate.
	if min := time.Duration(float64(n-1) / rate * float64(time.Second)); time.Since(start) < min {
		t.Fatalf("%d records at %g/s took %v, want at least %v", n, rate, time.Since(start), min)
	}
}

func TestGenerateRateCancel(t *testing.T) {
	// One record every 1000 s: the first is due at once, the second waits.
	src := stagetest.NewSource(t, "generate", map[string]any{"rate": 0.001}, stages.Info{})
	if _, err := src.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := src.Read(ctx)
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

	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := src.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}

func TestGenerateTemplateError(t *testing.T) {
	src := stagetest.NewSource(t, "generate", map[string]any{"count": 5, "template": "[10, 20][seq]"}, stages.Info{})
	for _, want := range []string{"10", "20"} {
		m, err := src.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := stagetest.PayloadOf(t, m); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	if _, err := src.Read(context.Background()); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("got %v, want the template's error", err)
	}
}

func TestGenerateParams(t *testing.T) {
	tests := []struct {
		name  string
		raw   map[string]any
		param string
	}{
		{"negative count", map[string]any{"count": -1}, "count"},
		{"negative rate", map[string]any{"rate": -0.5}, "rate"},
		{"bad template", map[string]any{"template": "{"}, "template"},
		{"unknown", map[string]any{"size": 3}, "size"},
	}
	s := stagetest.Lookup(t, stages.RoleSource, "generate")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := s.ParseParams(tt.raw)
			if len(errs) != 1 {
				t.Fatalf("got %v, want one error", errs)
			}
			var pe *stages.ParamError
			if !errors.As(errs[0], &pe) || pe.Param != tt.param || !errors.Is(errs[0], stages.ErrInvalidParam) {
				t.Fatalf("got %v, want an invalid %s", errs[0], tt.param)
			}
		})
	}
	// The constructor checks too, for params made without ParseParams.
	if _, err := s.NewSource(stages.NewParams(map[string]any{"count": -1}), stages.Info{}); !errors.Is(err, stages.ErrInvalidParam) {
		t.Fatalf("constructor with count -1: %v", err)
	}
}
