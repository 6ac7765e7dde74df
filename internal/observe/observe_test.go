package observe

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	for _, tt := range []struct {
		name, addr, token string
		insecure          bool
		want              string
		err               error
	}{
		{name: "bare port", addr: "9090", want: "127.0.0.1:9090"},
		{name: "colon port", addr: ":9090", want: "127.0.0.1:9090"},
		{name: "loopback", addr: "127.0.0.1:0", want: "127.0.0.1:0"},
		{name: "localhost", addr: "localhost:9090", want: "localhost:9090"},
		{name: "ipv6 loopback", addr: "[::1]:9090", want: "[::1]:9090"},
		{name: "every interface without token", addr: "0.0.0.0:9090", err: ErrNoAuth},
		{name: "host name without token", addr: "metrics.example:9090", err: ErrNoAuth},
		{name: "every interface with token", addr: "0.0.0.0:9090", token: "t", want: "0.0.0.0:9090"},
		{name: "every interface insecure", addr: "0.0.0.0:9090", insecure: true, want: "0.0.0.0:9090"},
		{name: "not a port", addr: "nine", err: ErrInvalidAddr},
		{name: "port out of range", addr: "127.0.0.1:70000", err: ErrInvalidAddr},
		{name: "empty", addr: "", err: ErrInvalidAddr},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckAddr(tt.addr, tt.token, tt.insecure)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("CheckAddr(%q, %q, %v) = %q, %v; want %q, %v", tt.addr, tt.token, tt.insecure, got, err, tt.want, tt.err)
			}
		})
	}
}

// TestReadyz: /readyz answers 503 naming each pipeline not running,
// before it starts and after it stops; /healthz answers 200 all along.
func TestReadyz(t *testing.T) {
	s, base := serve(t, Options{Pipelines: []string{"a", "b"}})
	check := func(path string, wantCode int, wantBody string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantCode || string(body) != wantBody {
			t.Errorf("%s: %d %q, want %d %q", path, resp.StatusCode, body, wantCode, wantBody)
		}
	}
	check("/healthz", http.StatusOK, "ok\n")
	check("/readyz", http.StatusServiceUnavailable, "pipeline a: not started\npipeline b: not started\n")
	s.Stopped("a")
	check("/readyz", http.StatusServiceUnavailable, "pipeline a: stopped\npipeline b: not started\n")
	check("/healthz", http.StatusOK, "ok\n")

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics: %d, want 200 with the Go collector's metrics", resp.StatusCode)
	}
}
