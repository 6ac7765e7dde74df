package bearer

import (
	"net/http/httptest"
	"testing"
)

func TestAllows(t *testing.T) {
	for _, tc := range []struct {
		token, header string
		want          bool
	}{
		{token: "", header: "", want: true},
		{token: "s3cret", header: "Bearer s3cret", want: true},
		{token: "s3cret", header: "bearer s3cret", want: true},
		{token: "s3cret", header: "", want: false},
		{token: "s3cret", header: "Bearer wrong", want: false},
		{token: "s3cret", header: "Basic s3cret", want: false},
		{token: "s3cret", header: "Bearers3cret", want: false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		if got := New(tc.token).Allows(r); got != tc.want {
			t.Errorf("token %q, Authorization %q: Allows = %v, want %v", tc.token, tc.header, got, tc.want)
		}
	}
}
