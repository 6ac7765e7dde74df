package records

import (
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
