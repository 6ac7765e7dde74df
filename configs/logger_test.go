package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name     string
		level    string
		format   string
		wantJSON bool
		debug    bool // debug records are written
	}{
		{"auto on a buffer is JSON", "info", "auto", true, false},
		{"text", "info", "text", false, false},
		{"json", "info", "json", true, false},
		{"debug level", "debug", "json", true, true},
		{"warn level", "warn", "text", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := Settings{LogLevel: tt.level, LogFormat: tt.format}.NewLogger(&buf)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("d")
			log.Error("e", "stage", "read")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if want := map[bool]int{true: 2, false: 1}[tt.debug]; len(lines) != want {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), want, buf.String())
			}
			last := lines[len(lines)-1]
			var rec map[string]any
			isJSON := json.Unmarshal([]byte(last), &rec) == nil
			if isJSON != tt.wantJSON {
				t.Errorf("JSON %v, want %v: %s", isJSON, tt.wantJSON, last)
			}
			if !isJSON && !strings.Contains(last, "level=ERROR") {
				t.Errorf("text record %q", last)
			}
		})
	}
}

func TestNewLoggerInvalid(t *testing.T) {
	for _, s := range []Settings{
		{LogLevel: "loud", LogFormat: "auto"},
		{LogLevel: "info", LogFormat: "xml"},
	} {
		if _, err := s.NewLogger(&bytes.Buffer{}); !errors.Is(err, ErrInvalidSettings) {
			t.Errorf("%+v: got %v, want ErrInvalidSettings", s, err)
		}
	}
}
