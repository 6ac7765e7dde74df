//go:build !linux

package sql

import "testing"

// pgServer is a PostgreSQL server of one test; see pgserver_linux_test.go.
type pgServer struct {
	DSN  string
	Port int
}

// startPostgres skips the test: the helper that runs a server of its own
// is written for Linux.
func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	t.Skip("the PostgreSQL tests start a server of their own on Linux only")
	return nil
}

// Stop does nothing.
func (s *pgServer) Stop() error { return nil }

// Start does nothing.
func (s *pgServer) Start() error { return nil }
