package core

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// newTestDelay returns a delay transform whose clock reads now.
func newTestDelay(t *testing.T, raw map[string]any, now time.Time) *delayTransform {
	t.Helper()
	d := stagetest.NewTransform(t, "delay", raw).(*delayTransform)
	d.now = func() time.Time { return now }
	return d
}

func TestDelayDue(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Minute), now.Add(time.Hour)
	tests := []struct {
		name      string
		raw       map[string]any
		published time.Time
		in        string
		wantErr   string // beginning of a permanent error
	}{
		{name: "duration elapsed", raw: map[string]any{"duration": "30s"}, published: past, in: `{}`},
		{name: "not a record with duration", raw: map[string]any{"duration": "30s"}, published: past, in: `[1]`},
		{name: "rfc 3339", raw: map[string]any{"until": "at"}, in: `{"at":"2026-03-01T11:59:00Z"}`},
		{name: "rfc 3339 with offset", raw: map[string]any{"until": "at"}, in: `{"at":"2026-03-01T12:59:59.5+01:00"}`},
		{name: "unix seconds", raw: map[string]any{"until": "ts"}, in: `{"ts":1772366340}`},
		{name: "unix milliseconds divided", raw: map[string]any{"until": "ts / 1000"}, in: `{"ts":1772366340123}`},
		{name: "a time", raw: map[string]any{"until": `date(at) + duration("1m")`}, in: `{"at":"2026-03-01T11:58:00Z"}`},
		{name: "metadata", raw: map[string]any{"until": `msg.event_time`}, in: `{}`},
		{name: "unix milliseconds", raw: map[string]any{"until": "ts"}, in: `{"ts":1772366340123}`},
		{name: "too large", raw: map[string]any{"until": "ts"}, in: `{"ts":1e15}`,
			wantErr: `delay: until "ts": gave 1e+15, too large for Unix milliseconds`},
		{name: "not a time", raw: map[string]any{"until": "at"}, in: `{"at":"yesterday"}`, wantErr: `delay: until "at": gave "yesterday", which is not an RFC 3339 time`},
		{name: "missing", raw: map[string]any{"until": "at"}, in: `{}`, wantErr: `delay: until "at": gave a JSON null, want a time, an RFC 3339 string or Unix seconds or milliseconds`},
		{name: "too far ahead", raw: map[string]any{"until": "at"}, in: `{"at":"` + future.Add(time.Second).Format(time.RFC3339) + `"}`,
			wantErr: `delay: until "at" is 1h0m1s ahead, more than max_delay 1h0m0s`},
		{name: "not an object", raw: map[string]any{"until": "at"}, in: `[1]`, wantErr: "record is a JSON array, not an object"},
		{name: "expression fails", raw: map[string]any{"until": "date(at)"}, in: `{"at":"x"}`, wantErr: `invalid date x (1:1) (in expression "date(at)")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDelay(t, tt.raw, now)
			in := stages.NewMessage([]byte(tt.in))
			in.Meta.Published = tt.published
			in.Header = stages.Header{stages.HeaderEventTime: {past.Format(time.RFC3339)}}
			// A record that is due passes at once; one that is not would
			// wait for the deadline and fail the test.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := d.Process(ctx, in, nil)
			if tt.wantErr != "" {
				if !stages.IsPermanent(err) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want a permanent error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(out) != 1 || out[0] != in {
				t.Fatalf("got %v, %v; want the input", out, err)
			}
		})
	}
}

// A record that is not due waits until it is, on the real clock.
func TestDelayWaits(t *testing.T) {
	for _, raw := range []map[string]any{
		{"duration": "50ms"},
		{"until": `now() + duration("50ms")`},
	} {
		tr := stagetest.NewTransform(t, "delay", raw)
		start := time.Now()
		in := stages.NewMessage([]byte(`{}`))
		in.Meta.Published = start
		out, err := tr.Process(context.Background(), in, nil)
		if err != nil || len(out) != 1 {
			t.Fatalf("%v: got %v, %v", raw, out, err)
		}
		if waited := time.Since(start); waited < 50*time.Millisecond {
			t.Fatalf("%v: passed after %s, before it was due", raw, waited)
		}
	}
}

// A record without a publication time (not read from a stream) waits the
// whole duration from now.
func TestDelayUnpublished(t *testing.T) {
	tr := stagetest.NewTransform(t, "delay", map[string]any{"duration": "20ms"})
	start := time.Now()
	if _, err := tr.Process(context.Background(), stages.NewMessage([]byte(`{}`)), nil); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("passed after %s", waited)
	}
}

// A stop while a record waits gives it back: the error is the context's,
// not permanent, and nothing is passed on.
func TestDelayStopped(t *testing.T) {
	tr := stagetest.NewTransform(t, "delay", map[string]any{"duration": "1h"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	prior := stages.NewMessage(nil)
	go func() {
		in := stages.NewMessage([]byte(`{}`))
		in.Meta.Published = time.Now()
		out, err := tr.Process(ctx, in, []*stages.Message{prior})
		if len(out) != 1 {
			err = errors.New("outputs appended")
		}
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || stages.IsPermanent(err) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Process did not return after the context was cancelled")
	}
}

func TestDelayParams(t *testing.T) {
	stagetest.CheckParamErrors(t, "delay", []stagetest.ParamCase{
		{Raw: map[string]any{}, Param: "duration", Msg: "duration: give exactly one of duration and until"},
		{Raw: map[string]any{"duration": "1s", "until": "at"}, Param: "duration", Msg: "give exactly one of duration and until"},
		{Raw: map[string]any{"duration": "0s"}, Param: "duration", Msg: "duration: must be more than 0"},
		{Raw: map[string]any{"duration": "-1s"}, Param: "duration", Msg: "want a duration"},
		{Raw: map[string]any{"until": "at +"}, Param: "until", Msg: "until: expression does not compile"},
		{Raw: map[string]any{"until": "at", "max_delay": "0s"}, Param: "max_delay", Msg: "max_delay: must be more than 0"},
	})
}
