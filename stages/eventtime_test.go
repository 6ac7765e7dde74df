package stages

import (
	"strings"
	"testing"
	"time"
)

func TestEventTime(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 30, 15, 250_000_000, time.UTC)
	tests := []struct {
		in      any
		want    time.Time
		wantErr string
	}{
		{at, at, ""},
		{"2026-11-24T10:30:15.25Z", at, ""},
		{"2026-11-24T11:30:15.25+01:00", at, ""},
		{int64(1795516215), at.Truncate(time.Second), ""},
		{1795516215.25, at, ""},
		{int64(1795516215250), at, ""}, // milliseconds
		{float64(1795516215250), at, ""},
		{0, time.Unix(0, 0), ""},
		{"yesterday", time.Time{}, `gave "yesterday", which is not an RFC 3339 time`},
		{nil, time.Time{}, "gave a JSON null"},
		{true, time.Time{}, "gave a JSON boolean"},
		{1e15, time.Time{}, "too large for Unix milliseconds"},
	}
	for _, tt := range tests {
		got, err := EventTime(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("EventTime(%v): error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("EventTime(%v) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if s := FormatEventTime(at.In(time.FixedZone("x", 3600))); s != "2026-11-24T10:30:15.25Z" {
		t.Errorf("FormatEventTime = %q", s)
	}
}

func TestEventTimeOf(t *testing.T) {
	stored := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := NewMessage([]byte(`{}`))
	m.Meta.Published = stored
	if got := EventTimeOf(m); !got.Equal(stored) {
		t.Errorf("without a header: %v, want the stored time %v", got, stored)
	}
	m.Header = Header{HeaderEventTime: {"2026-11-24T10:30:15Z"}}
	if got := EventTimeOf(m); !got.Equal(time.Date(2026, 11, 24, 10, 30, 15, 0, time.UTC)) {
		t.Errorf("with a header: %v", got)
	}
}

func TestKeyString(t *testing.T) {
	tests := []struct {
		in      any
		want    string
		wantErr string
	}{
		{"u-1", "u-1", ""},
		{int64(42), "42", ""},
		{42, "42", ""},
		{1.5, "1.5", ""},
		{float64(3), "3", ""},
		{true, "true", ""},
		{[]any{"a", int64(1)}, `["a",1]`, ""},
		{map[string]any{"b": int64(2), "a": "x"}, `{"a":"x","b":2}`, ""},
		{nil, "", "gave null"},
	}
	for _, tt := range tests {
		got, err := KeyString(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("KeyString(%v): error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("KeyString(%v) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
