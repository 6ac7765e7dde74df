package rssprobe_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/stages"
)

var rec = []byte(`{"id": 12345, "name": "` + strings.Repeat("x", 40) + `", "tags": ["a", "b", "c"], "n": {"f": 1.5, "ok": true}}`)

func BenchmarkOldValid(b *testing.B) {
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		_ = utf8.Valid(rec) && json.Valid(rec)
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		_, _ = stages.DecodeJSON(rec)
	}
}
