package stages

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestMessageLazyDecode(t *testing.T) {
	payload := []byte("not json")
	m := NewMessage(payload)
	// Passing bytes through never decodes them.
	got, err := m.Payload()
	if err != nil || &got[0] != &payload[0] {
		t.Fatalf("Payload: %q, %v; want the bytes given", got, err)
	}
	if _, err := m.Value(); !IsPermanent(err) {
		t.Fatalf("Value of bad JSON: %v, want a permanent error", err)
	}
	// A decoded payload that is not changed is not re-encoded.
	payload = []byte(`{"b": 1,  "a": [true, null]}`)
	m = NewMessage(payload)
	if _, err := m.Record(); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Payload(); string(got) != string(payload) {
		t.Fatalf("Payload after Record: %s", got)
	}
}

func TestMessageValue(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{`{"n": 9007199254740993}`, map[string]any{"n": int64(9007199254740993)}},
		{`9223372036854775807`, int64(math.MaxInt64)},
		{`-9223372036854775808`, int64(math.MinInt64)},
		{`9223372036854775808`, 9223372036854775808.0},
		{`1.0`, 1.0},
		{`1e2`, 100.0},
		{`[1, "s", {"x": [2.5]}]`, []any{int64(1), "s", map[string]any{"x": []any{2.5}}}},
		{`null`, nil},
		{` "s" `, "s"},
	}
	for _, tt := range tests {
		v, err := NewMessage([]byte(tt.in)).Value()
		if err != nil || !reflect.DeepEqual(v, tt.want) {
			t.Errorf("Value(%s) = %#v, %v; want %#v", tt.in, v, err, tt.want)
		}
	}
	for _, bad := range []string{``, `{`, `{} {}`, `1 2`, `nul`} {
		if _, err := NewMessage([]byte(bad)).Value(); !IsPermanent(err) {
			t.Errorf("Value(%q): %v, want a permanent error", bad, err)
		}
	}
}

// TestJSONErrorsDoNotQuoteTheRecord checks that a decode error, which goes
// into logs and dead-letter headers, says what is wrong without the data.
func TestJSONErrorsDoNotQuoteTheRecord(t *testing.T) {
	for _, in := range []string{
		`{"password": "hunter2", "oops"}`,
		`{"password": "hunter2"} trailing`,
		`{"password": "hunter2",}`,
	} {
		_, err := DecodeJSON([]byte(in))
		if err == nil || strings.Contains(err.Error(), "hunter2") || strings.ContainsAny(err.Error(), "\n") {
			t.Errorf("DecodeJSON(%q) error = %v, want one line without the record", in, err)
		}
	}
}

// TestValueErrorsSayWhatAndWhere checks that the reason a record is
// refused, which becomes its dead-letter reason, names the problem and
// the byte, once.
func TestValueErrorsSayWhatAndWhere(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }
	deepObj := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	for _, tc := range []struct {
		name, in, want string
	}{
		{"truncated", `{"n": `, "invalid JSON: unexpected end of JSON input (at byte 6)"},
		{"bad character", `{"n": x}`, "invalid JSON: invalid character 'x' looking for beginning of value (at byte 7)"},
		{"trailing data", `{} {}`, "invalid JSON: invalid character '{' after top-level value (at byte 4)"},
		{"not UTF-8", "\"\xff\"", "invalid JSON: record is not valid UTF-8 (at byte 1)"},
		{"arrays too deep", deep(MaxJSONDepth + 1), fmt.Sprintf("invalid JSON: nesting deeper than %d (at byte %d)", MaxJSONDepth, MaxJSONDepth)},
		{"objects too deep", deepObj(5000), fmt.Sprintf("invalid JSON: nesting deeper than %d (at byte %d)", MaxJSONDepth, 5*MaxJSONDepth)},
		{"brackets in strings do not count", `["` + strings.Repeat("[", 5000) + `", ` + deep(MaxJSONDepth) + `]`, fmt.Sprintf("invalid JSON: nesting deeper than %d (at byte %d)", MaxJSONDepth, 5004+MaxJSONDepth)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewMessage([]byte(tc.in)).Value()
			if err == nil || err.Error() != tc.want || !IsPermanent(err) {
				t.Errorf("Value: %v, want the permanent error %q", err, tc.want)
			}
		})
	}
	var je *JSONError
	if _, err := DecodeJSON([]byte(deep(5000))); !errors.As(err, &je) || je.Offset != MaxJSONDepth {
		t.Errorf("DecodeJSON of nesting 5000 deep: %v, want a *JSONError at byte %d", err, MaxJSONDepth)
	}
	// The deepest nesting the codec takes decodes.
	for _, in := range []string{deep(MaxJSONDepth), deepObj(MaxJSONDepth)} {
		if _, err := NewMessage([]byte(in)).Value(); err != nil {
			t.Errorf("Value of nesting %d deep: %v", MaxJSONDepth, err)
		}
	}
}

func TestEncodeJSON(t *testing.T) {
	got, err := EncodeJSON(map[string]any{"b": "<&>", "a": []any{int64(9007199254740993), 1.5, nil, true}, "c": map[string]any{"z": 1, "y": "é"}})
	if want := `{"a":[9007199254740993,1.5,null,true],"b":"<&>","c":{"y":"é","z":1}}`; err != nil || string(got) != want {
		t.Errorf("EncodeJSON = %s, %v; want %s (sorted keys, no HTML escaping)", got, err, want)
	}
	if _, err := EncodeJSON(math.NaN()); err == nil || err.Error() != "json: unsupported value: NaN" {
		t.Errorf("EncodeJSON(NaN) error = %v", err)
	}
	// Invalid UTF-8 is an error, not mended as encoding/json does; so is
	// an invalid escape.
	if v, err := DecodeJSON([]byte("\"a\xffb\"")); err == nil || err.Error() != "record is not valid UTF-8 (at byte 2)" {
		t.Errorf("DecodeJSON of invalid UTF-8 = %q, %v", v, err)
	}
	if v, err := DecodeJSON([]byte(`"\ud800"`)); err == nil {
		t.Errorf("DecodeJSON of a lone surrogate = %q, %v", v, err)
	}
}

func TestMessageSetValue(t *testing.T) {
	m := NewMessage([]byte(`{"big": 9007199254740993, "f": 0.1, "s": "a"}`))
	rec, err := m.Record()
	if err != nil {
		t.Fatal(err)
	}
	rec["html"] = "<a href=\"x\">&</a>"
	delete(rec, "s")
	// Not seen until SetValue.
	if got, _ := m.Payload(); string(got) != `{"big": 9007199254740993, "f": 0.1, "s": "a"}` {
		t.Fatalf("payload changed before SetValue: %s", got)
	}
	m.SetValue(rec)
	got, err := m.Payload()
	if want := `{"big":9007199254740993,"f":0.1,"html":"<a href=\"x\">&</a>"}`; err != nil || string(got) != want {
		t.Fatalf("Payload = %s, %v; want %s", got, err, want)
	}
	if v, _ := m.Value(); !reflect.DeepEqual(v, rec) {
		t.Fatal("Value after SetValue is not the value set")
	}

	m.SetPayload([]byte(`[1]`))
	if v, err := m.Value(); err != nil || !reflect.DeepEqual(v, []any{int64(1)}) {
		t.Fatalf("Value after SetPayload = %v, %v", v, err)
	}

	m = NewValueMessage(map[string]any{"n": math.Inf(1)})
	if _, err := m.Payload(); !IsPermanent(err) {
		t.Fatalf("Payload of an unencodable value: %v, want a permanent error", err)
	}
}

func TestMessageRecord(t *testing.T) {
	tests := []struct{ in, want string }{
		{`[1]`, "record is a JSON array, not an object"},
		{`"s"`, "record is a JSON string, not an object"},
		{`1.5`, "record is a JSON number, not an object"},
		{`true`, "record is a JSON boolean, not an object"},
		{`null`, "record is a JSON null, not an object"},
	}
	for _, tt := range tests {
		_, err := NewMessage([]byte(tt.in)).Record()
		if !errors.Is(err, ErrPermanent) || err.Error() != tt.want {
			t.Errorf("Record(%s): %v, want permanent %q", tt.in, err, tt.want)
		}
	}
	if rec, err := NewMessage([]byte(`{}`)).Record(); err != nil || len(rec) != 0 {
		t.Errorf("Record({}) = %v, %v", rec, err)
	}
}

func TestMessageDerive(t *testing.T) {
	m := NewMessage([]byte(`{"a":1}`))
	m.Header = Header{"K": {"v1", "v2"}}
	m.Meta = Meta{Subject: "s", Stream: "S", Sequence: 7, Deliveries: 2}
	d := m.Derive(map[string]any{"x": "<"})
	if got, _ := d.Payload(); string(got) != `{"x":"<"}` {
		t.Fatalf("derived payload %s", got)
	}
	if d.Meta != m.Meta || !reflect.DeepEqual(d.Header, m.Header) {
		t.Fatalf("derived %v %v, want %v %v", d.Meta, d.Header, m.Meta, m.Header)
	}
	d.Header.Set("K", "changed")
	d.Header.Add("New", "1")
	if m.Header.Get("K") != "v1" || m.Header.Get("New") != "" {
		t.Fatalf("Derive shares the header map: %v", m.Header)
	}
	if d := NewMessage(nil).Derive(1); d.Header != nil {
		t.Fatalf("derived from no headers: %v", d.Header)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("base")
	p := Permanent(base)
	if !IsPermanent(p) || !errors.Is(p, base) || p.Error() != "base" {
		t.Fatalf("Permanent(base) = %v", p)
	}
	if Permanent(p) != p || Permanent(nil) != nil || IsPermanent(base) {
		t.Fatal("Permanent is not idempotent or marks too much")
	}
}

func TestOutage(t *testing.T) {
	base := errors.New("connection refused")
	o := Outage(base)
	if !IsOutage(o) || !errors.Is(o, base) || o.Error() != base.Error() {
		t.Fatalf("Outage(base) = %v", o)
	}
	if Outage(o) != o || Outage(nil) != nil || IsOutage(base) || IsPermanent(o) {
		t.Fatal("Outage is not idempotent or marks too much")
	}
	// A record the destination rejects stays the record's fault.
	p := Permanent(base)
	if Outage(p) != p || IsOutage(Outage(p)) || IsOutage(Permanent(o)) {
		t.Fatal("a permanent error became an outage")
	}
}
