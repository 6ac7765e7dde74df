package sql

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/sluicehq/sluice/stages"
)

// The SQLite result codes the sql sink tells apart (the primary code, in
// the low byte of an extended one).
const (
	sqliteBusy       = 5  // SQLITE_BUSY: another connection holds the lock, past the busy timeout
	sqliteLocked     = 6  // SQLITE_LOCKED: a table is locked within the database
	sqliteNoMem      = 7  // SQLITE_NOMEM
	sqliteReadOnly   = 8  // SQLITE_READONLY: the database or its file is read-only
	sqliteIOErr      = 10 // SQLITE_IOERR: the disk failed
	sqliteFull       = 13 // SQLITE_FULL: the disk is full
	sqliteCantOpen   = 14 // SQLITE_CANTOPEN: the file cannot be opened
	sqliteTooBig     = 18 // SQLITE_TOOBIG: a string or blob over the limit
	sqliteConstraint = 19 // SQLITE_CONSTRAINT: NOT NULL, UNIQUE, CHECK, foreign key, STRICT types
	sqliteMismatch   = 20 // SQLITE_MISMATCH: a non-integer rowid
)

// rowError tells whether err is the database refusing the data of a row,
// which writing that row again cannot fix, rather than a failure of the
// statement, the connection or the transaction. A batch that fails with
// it is written again row by row, so that only the rows refused fail.
func rowError(err error) bool {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		if len(pe.Code) != 5 {
			return false
		}
		switch pe.Code[:2] {
		case "21", // cardinality violation: two rows of one statement upsert the same key
			"22", // data exception: invalid text for the type, out of range, too long
			"23", // integrity constraint violation
			"54": // program limit exceeded: a row too large for its index
			return true
		}
		switch pe.Code {
		case "42703", // undefined column: dropped since the sink read the table
			"42804", // datatype mismatch
			"428C9": // a value for a generated column
			return true
		}
		return false
	}
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		switch se.Code() & 0xff {
		case sqliteTooBig, sqliteConstraint, sqliteMismatch:
			return true
		}
	}
	return false
}

// classify marks an error that failed a whole batch: as an outage when
// the database cannot be reached or cannot write for now (the connection,
// a server shutting down, starting up, read-only or out of resources, a
// lock, a deadlock or serialization failure), as permanent when the
// statement itself is wrong for the table (PostgreSQL's class 42: a table
// or column dropped, a permission revoked since the sink opened), which
// no retry fixes. Other errors are left as they are, for the per-record
// retries.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case outage(err):
		return stages.Outage(err)
	case statementError(err):
		return stages.Permanent(err)
	}
	return err
}

// outage tells whether err says the database is unreachable or cannot
// write for now, whatever the records.
func outage(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the run is stopping, not the database
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		if len(pe.Code) != 5 {
			return false
		}
		switch pe.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources: disk full, out of memory, too many connections
			"58": // system error: I/O error
			return true
		}
		switch pe.Code {
		case "57P01", // admin shutdown
			"57P02", // crash shutdown
			"57P03", // cannot connect now: starting up or in recovery
			"25006", // read-only SQL transaction: a standby, or default_transaction_read_only
			"40001", // serialization failure
			"40P01", // deadlock detected
			"55P03": // lock not available
			return true
		}
		return false
	}
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		switch se.Code() & 0xff {
		case sqliteBusy, sqliteLocked, sqliteNoMem, sqliteReadOnly, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return true
		}
		return false
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true // dial, TLS or start-up failed without a server error
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true // refused, reset, timed out, no route
	}
	return pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, driver.ErrBadConn)
}

// statementError tells whether err is PostgreSQL refusing the statement
// itself (class 42: syntax error or access rule violation): an undefined
// table, a permission denied.
func statementError(err error) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	return ok && len(pe.Code) == 5 && pe.Code[:2] == "42"
}
