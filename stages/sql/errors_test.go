package sql

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/stages"
)

// TestClassify checks how errors that fail a whole batch are marked,
// for the PostgreSQL codes and network failures the tests cannot easily
// make a real server give (the tests of TestSQLSink make it give the
// others).
func TestClassify(t *testing.T) {
	pg := func(code string) error {
		return fmt.Errorf("sql postgres table t: insert: %w", &pgconn.PgError{Severity: "ERROR", Code: code})
	}
	const (
		outage    = "outage"
		permanent = "permanent"
		neither   = "neither"
	)
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"connection failure", pg("08006"), outage},
		{"too many connections", pg("53300"), outage},
		{"disk full", pg("53100"), outage},
		{"I/O error", pg("58030"), outage},
		{"admin shutdown", pg("57P01"), outage},
		{"crash shutdown", pg("57P02"), outage},
		{"cannot connect now", pg("57P03"), outage},
		{"read-only transaction", pg("25006"), outage},
		{"serialization failure", pg("40001"), outage},
		{"deadlock", pg("40P01"), outage},
		{"lock not available", pg("55P03"), outage},
		{"undefined table", pg("42P01"), permanent},
		{"permission denied", pg("42501"), permanent},
		{"syntax error", pg("42601"), permanent},
		{"internal error", pg("XX000"), neither},
		{"query canceled", pg("57014"), neither},
		{"dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, outage},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), outage},
		{"deadline", fmt.Errorf("insert: %w", context.DeadlineExceeded), outage},
		{"canceled", fmt.Errorf("insert: %w", context.Canceled), neither},
		{"other", errors.New("something else"), neither},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.err)
			got := neither
			switch {
			case stages.IsOutage(err):
				got = outage
			case stages.IsPermanent(err):
				got = permanent
			}
			if got != tt.want {
				t.Errorf("classify(%v): %s, want %s", tt.err, got, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("classify(%v) = %v does not wrap it", tt.err, err)
			}
		})
	}
}
