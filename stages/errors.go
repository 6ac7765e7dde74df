package stages

import (
	"errors"
	"fmt"
)

// ErrPermanent marks an error that retrying cannot fix (bad JSON, an
// expression that fails on this record). The runner sends a message whose
// processing failed with an error matching ErrPermanent to the dead-letter
// stream at once instead of retrying it. Use [Permanent] to mark an error.
var ErrPermanent = errors.New("sluice: permanent error")

// ErrOutage marks an error that says the destination is unreachable, not
// that the record is bad: a refused, reset or timed-out connection, an
// HTTP 5xx, 408 or 429, a database that is down or read-only, a command
// that keeps dying. The runner holds a stage that fails with it: it keeps
// the records, stops taking new ones and tries again with a capped backoff
// until the destination is back (or the stage's max_outage has passed),
// instead of counting attempts and dead-lettering. Use [Outage] to mark an
// error.
var ErrOutage = errors.New("sluice: destination unavailable")

// ErrUnknownType is returned by [Registry.Lookup] for a type name that is not
// registered.
var ErrUnknownType = errors.New("sluice: unknown stage type")

// ErrDuplicateType is returned by [Registry.Register] when the name is taken.
var ErrDuplicateType = errors.New("sluice: stage type already registered")

// ErrInvalidSpec is returned by [Registry.Register] for a malformed [Spec].
var ErrInvalidSpec = errors.New("sluice: invalid stage spec")

// ErrInvalidParam is wrapped by the errors of [Spec.Params] parsing and of a
// spec's Check function.
var ErrInvalidParam = errors.New("sluice: invalid parameter")

// ErrBusy is returned by a stage constructor when what the stage writes is
// held by another process (a file another sink writes). Where a standby is
// useful (sluice worker), the runner tries again later; elsewhere it is a
// start-up error.
var ErrBusy = errors.New("sluice: in use by another process")

// ErrNoConn is returned by the constructor of a stage type that keeps its
// state in NATS (a KV bucket) when [Info.Conn] is nil: such a stage runs
// only in a pipeline, whose runner gives it the connection.
var ErrNoConn = errors.New("sluice: no NATS connection")

// ErrDeadLettered is what [Message.Ack] gets, wrapped with the reason,
// for a record that went to the dead-letter stream (or was dropped with
// on_error: drop) instead of into the pipeline.
var ErrDeadLettered = errors.New("sluice: record not accepted")

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (e *permanentError) Unwrap() error { return e.err }

func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// Permanent marks err as permanent: errors.Is(Permanent(err), ErrPermanent)
// is true and errors.Is/As still see err. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err is marked permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

type outageError struct{ err error }

func (e *outageError) Error() string { return e.err.Error() }

func (e *outageError) Unwrap() error { return e.err }

func (e *outageError) Is(target error) bool { return target == ErrOutage }

// Outage marks err as an outage of the destination: errors.Is(Outage(err),
// ErrOutage) is true and errors.Is/As still see err. Outage(nil) is nil.
// An error already marked permanent is returned as it is: a record the
// destination rejects is the record's fault.
func Outage(err error) error {
	if err == nil || errors.Is(err, ErrOutage) || errors.Is(err, ErrPermanent) {
		return err
	}
	return &outageError{err: err}
}

// IsOutage reports whether err is marked as an outage of the destination.
func IsOutage(err error) bool { return errors.Is(err, ErrOutage) && !errors.Is(err, ErrPermanent) }

// BatchError is returned by [Sink.Write] when only some messages of a batch
// failed: Errs has one entry per message of the batch, nil for a message that
// was written. A Write that returns any other error failed as a whole.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	n := 0
	var first error
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	if first == nil {
		return "sluice: batch error with no failed message"
	}
	return fmt.Sprintf("sluice: %d of %d messages failed, first: %v", n, len(e.Errs), first)
}

// ErrSourceClosed is what the built-in sources return from Read after
// Close; a source of another type may return it too.
var ErrSourceClosed = errors.New("source is closed")

// ErrSinkClosed is what the built-in sinks return from Write after Close;
// a sink of another type may return it too.
var ErrSinkClosed = errors.New("sink is closed")
