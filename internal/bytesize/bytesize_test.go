package bytesize

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "4096", want: 4096},
		{in: "512MiB", want: 512 << 20},
		{in: "512 MiB", want: 512 << 20},
		{in: "1GB", want: 1e9},
		{in: "3KiB", want: 3 << 10},
		{in: "7B", want: 7},
		{in: " 2TiB ", want: 2 << 40},
		{in: "", err: true},
		{in: "MiB", err: true},
		{in: "-1MiB", err: true},
		{in: "1.5GiB", err: true},
		{in: "1 parsec", err: true},
		{in: "9000000TiB", err: true},
	} {
		got, err := Parse(tc.in)
		if tc.err {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("Parse(%q) = %d, %v; want ErrSyntax", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestMiB(t *testing.T) {
	for n, want := range map[int64]string{16 << 20: "16 MiB", 1 << 19: "0.5 MiB", 0: "0 MiB"} {
		if got := MiB(n); got != want {
			t.Errorf("MiB(%d) = %q, want %q", n, got, want)
		}
	}
}
