// Package errtext words what the stage API and the built-in stage types
// put in error messages about records and expressions, so that they all
// say it the same way.
package errtext

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// JSONKind names the JSON kind of a decoded value: "null", "boolean",
// "string", "array", "object" or "number".
func JSONKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	default:
		return "number"
	}
}

// KindOf names the kind of a value an expression produced, in JSON
// terms where there is one ("a JSON number"), else its Go type.
func KindOf(v any) string {
	switch v.(type) {
	case nil, bool, string, []any, map[string]any,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return "a JSON " + JSONKind(v)
	}
	return fmt.Sprintf("a %T", v)
}

// InvalidUTF8At returns the offset of the first byte of b that is not
// valid UTF-8.
func InvalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// OneLine returns the first line of s, such as what an expression's
// compile error says before its snippet of the source.
func OneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// ShortSource returns an expression's source on one line with its spaces
// collapsed, cut to about 60 characters.
func ShortSource(src string) string {
	s := strings.Join(strings.Fields(src), " ")
	if r := []rune(s); len(r) > 60 {
		s = string(r[:60]) + "…"
	}
	return s
}
