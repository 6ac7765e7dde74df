package stages

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// Unix numbers at or above maxEventSeconds are taken as milliseconds:
// 1e11 seconds is in the year 5138, and milliseconds since 1973 are above
// it. Numbers at or above maxEventMillis (the year 5138 in milliseconds)
// are refused.
const (
	maxEventSeconds = 1e11
	maxEventMillis  = 1e14
)

// EventTime converts what an event_time expression gave into a time: a
// time, an RFC 3339 string, or a number of Unix seconds (fractions too)
// or, from 1e11 on, Unix milliseconds.
func EventTime(v any) (time.Time, error) {
	var n float64
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(x))
		if err != nil {
			return time.Time{}, fmt.Errorf("gave %q, which is not an RFC 3339 time", x)
		}
		return t, nil
	case int:
		n = float64(x)
	case int64:
		n = float64(x)
	case uint64:
		n = float64(x)
	case float64:
		n = x
	default:
		return time.Time{}, fmt.Errorf("gave %s, want a time, an RFC 3339 string or Unix seconds or milliseconds", errtext.KindOf(v))
	}
	switch a := math.Abs(n); {
	case math.IsNaN(n) || a >= maxEventMillis:
		return time.Time{}, fmt.Errorf("gave %v, too large for Unix milliseconds", n)
	case a >= maxEventSeconds:
		return time.UnixMilli(int64(n)), nil
	}
	whole, frac := math.Modf(n)
	return time.Unix(int64(whole), int64(frac*1e9)), nil
}

// FormatEventTime returns t as the Sluice-Event-Time header holds it:
// RFC 3339 in UTC with the fractional seconds it has.
func FormatEventTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// EventTimeOf returns the event time of m: its Sluice-Event-Time header,
// or, without one (or with one that does not parse), the time the stream
// m was read from stored it.
func EventTimeOf(m *Message) time.Time {
	if s := m.Header.Get(HeaderEventTime); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t
		}
	}
	return m.Meta.Published
}

// KeyString returns the text of a key that a key expression gave, as the
// Sluice-Key header holds it: a string as it is, a number or a boolean as
// JSON writes it, a list or an object as its JSON. nil is refused.
func KeyString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", fmt.Errorf("gave null, want a value to key the record by")
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("gave %s, which cannot be a key: %w", errtext.KindOf(v), err)
	}
	return string(b), nil
}
