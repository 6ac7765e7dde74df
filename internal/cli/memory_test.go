package cli

import "testing"

func TestHeapWarning(t *testing.T) {
	const limit = 400
	for _, tc := range []struct {
		live, warned int64
		want         bool
	}{
		{live: 100, want: false},
		{live: 299, want: false},
		{live: 300, want: true},
		{live: 350, warned: 300, want: false},
		{live: 375, warned: 300, want: true},
		{live: 500, warned: 375, want: true},
		{live: 310, warned: 500, want: false},
	} {
		if got := heapWarning(tc.live, limit, tc.warned); got != tc.want {
			t.Errorf("heapWarning(%d, %d, %d) = %v, want %v", tc.live, limit, tc.warned, got, tc.want)
		}
	}
}
