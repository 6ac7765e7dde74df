package observe

import (
	"fmt"
	"net"
	"strconv"
)

// CheckAddr returns the address to listen on for addr: a bare port
// ("9090" or ":9090") means 127.0.0.1, loopback; HOST:PORT is taken as
// given. An address whose host is not loopback ("0.0.0.0:9090", a host
// name, an external IP) is refused with [ErrNoAuth] unless token is set or
// insecure is true.
func CheckAddr(addr, token string, insecure bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "", addr // a bare port
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%w: want PORT, :PORT or HOST:PORT with a port from 0 to 65535 (got %q)", ErrInvalidAddr, addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if !isLoopback(host) && token == "" && !insecure {
		return "", fmt.Errorf("%w (got %q)", ErrNoAuth, addr)
	}
	return net.JoinHostPort(host, port), nil
}

// isLoopback reports whether host is a loopback address or "localhost".
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
