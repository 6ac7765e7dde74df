// Package bytesize parses and formats sizes in bytes as the settings and
// pipeline files write them: 512MiB, 1GB, 4096.
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by the error of [Parse] for text that is not a size.
var ErrSyntax = errors.New("want a size in bytes such as 512MiB or 1GB")

// units are the suffixes of a size, longest first so that "MiB" is not
// read as "B".
var units = []struct {
	suffix string
	factor int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// Parse returns the number of bytes s gives: a non-negative integer,
// optionally followed (with or without a space) by B, KB, MB, GB, TB, KiB,
// MiB, GiB or TiB.
func Parse(s string) (int64, error) {
	text, factor := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(text, u.suffix); ok {
			text, factor = strings.TrimSpace(num), u.factor
			break
		}
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil || v < 0 || v > math.MaxInt64/factor {
		return 0, fmt.Errorf("%w, got %q", ErrSyntax, s)
	}
	return v * factor, nil
}

// MiB formats n bytes in MiB, such as "16 MiB" or "0.5 MiB".
func MiB(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB"
}
