package kvbucket

import (
	"strings"
	"testing"
)

func TestCheckKVKey(t *testing.T) {
	for _, key := range []string{"a", "a.b", "A-b_c/d=e.9", strings.Repeat("k", MaxKeyLen)} {
		if err := CheckKey(key); err != nil {
			t.Errorf("%q: %v", key, err)
		}
	}
	for _, key := range []string{"", ".a", "a.", "a..b", "a b", "a*", "a>", "ü", strings.Repeat("k", MaxKeyLen+1)} {
		if err := CheckKey(key); err == nil {
			t.Errorf("%q: accepted", key)
		}
	}
}
