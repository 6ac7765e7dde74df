package records

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
)

func TestCSVField(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{nil, ""}, {"s", "s"}, {true, "true"}, {int64(-3), "-3"}, {7, "7"},
		{1.5, "1.5"}, {1e21, "1e+21"}, {1e-7, "1e-7"}, {100.0, "100"}, {0.0, "0"},
		{[]any{"a"}, `["a"]`}, {map[string]any{"k": "<"}, `{"k":"<"}`},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05Z"},
	} {
		got, err := csvField(tt.v)
		if err != nil || got != tt.want {
			t.Errorf("csvField(%#v) = %q, %v; want %q", tt.v, got, err, tt.want)
		}
		if f, ok := tt.v.(float64); ok {
			// Numbers read as they would in JSON.
			b, _ := stages.EncodeJSON(f)
			if string(b) != got {
				t.Errorf("csvField(%v) = %s, JSON has %s", f, got, b)
			}
		}
	}
	if _, err := csvField(make(chan int)); err == nil {
		t.Error("csvField of a channel: no error")
	}
}

// TestReaderInvalidUTF8 checks that the jsonl and csv readers return a
// record that is not valid UTF-8 as its raw text with a permanent
// *InvalidUTF8Error locating the first bad byte, and that lines passes
// any bytes on.
func TestReaderInvalidUTF8(t *testing.T) {
	tests := []struct {
		format, in string
		at         Position
		want       []string // payloads
		errs       []string // the error of each record, "" for none
	}{
		{JSONL, "{}\n\"caf\xe9\"\n", Position{}, []string{"{}", "\"caf\xe9\""}, []string{"", "stdin line 2: not valid UTF-8 at byte 4 of the line (0xe9)"}},
		{JSONL, "\"\xf0\x9f\x98\"", Position{Line: 9}, []string{"\"\xf0\x9f\x98\""}, []string{"stdin line 10: not valid UTF-8 at byte 1 of the line (0xf0)"}},
		{CSV, "a,b\n\"x\ny\xe9\",1\nok,2\n", Position{}, []string{"\"x\ny\xe9\",1", `{"a":"ok","b":"2"}`}, []string{"stdin line 3: not valid UTF-8 at byte 1 of the line (0xe9)", ""}},
		{Lines, "caf\xe9\n", Position{}, []string{"caf\xe9"}, []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			r := NewReader(tt.format, strings.NewReader(tt.in), "stdin", tt.at, nil)
			for i := range tt.want {
				m, err := r.Read()
				if m == nil {
					t.Fatalf("record %d: no message, error %v", i, err)
				}
				if p, _ := m.Payload(); string(p) != tt.want[i] {
					t.Errorf("record %d: payload %q, want %q", i, p, tt.want[i])
				}
				var ue *InvalidUTF8Error
				switch {
				case tt.errs[i] == "" && err != nil:
					t.Errorf("record %d: unexpected error %v", i, err)
				case tt.errs[i] != "" && (err == nil || err.Error() != tt.errs[i] || !stages.IsPermanent(err) || !errors.As(err, &ue)):
					t.Errorf("record %d: error %v, want a permanent *InvalidUTF8Error %q", i, err, tt.errs[i])
				}
			}
			if _, err := r.Read(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the records: %v", err)
			}
		})
	}
}

// TestColumnNames: every column is kept under a name of its own, an empty
// name or one that comes again renamed.
func TestColumnNames(t *testing.T) {
	tests := []struct{ header, want []string }{
		{[]string{"a", "b"}, []string{"a", "b"}},
		{[]string{"a", "", "b", ""}, []string{"a", "column_2", "b", "column_4"}},
		{[]string{"amount", "amount", "amount"}, []string{"amount", "amount_2", "amount_3"}},
		{[]string{"a", "a", "a_2"}, []string{"a", "a_3", "a_2"}},
		{[]string{"column_2", ""}, []string{"column_2", "column_2_2"}},
		{[]string{"Order ID", " spaced "}, []string{"Order ID", " spaced "}},
	}
	for _, tt := range tests {
		if got := columnNames(tt.header); !slices.Equal(got, tt.want) {
			t.Errorf("columnNames(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}
