// Package retry is sluice's one way of trying again: a capped exponential
// [Backoff], a [Sleep] that heeds its context, [Do] to call a function
// until it succeeds, and [Settling] to tell the errors a JetStream cluster
// gives while it settles, which are worth waiting out.
package retry

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Backoff is a capped exponential pause: Min before the first retry,
// doubled for each retry after it, at most Max.
type Backoff struct {
	Min, Max time.Duration
	// Jitter takes away up to this fraction (0 to 1) of each pause at
	// random, so that processes retrying together spread out.
	Jitter float64
}

// Delay returns the pause before retry number attempt, counting from 0.
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Max
	if attempt < 62 && b.Min > 0 {
		if shifted := b.Min << attempt; shifted > 0 && shifted < b.Max {
			d = shifted
		}
	}
	d = max(d, b.Min)
	if b.Jitter > 0 && d > 0 {
		d -= time.Duration(rand.Int64N(int64(float64(d)*b.Jitter) + 1))
	}
	return d
}

// Sleep pauses for d; it returns false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Do calls fn until it returns nil, or an error for which again reports
// false, pausing as b says between calls. It gives up, returning fn's
// last error, once ctx has ended or, if limit is not 0, limit has passed
// since the first call. each, if not nil, hears every error that is
// retried.
func Do(ctx context.Context, b Backoff, limit time.Duration, again func(error) bool, each func(error), fn func() error) error {
	var deadline time.Time
	if limit > 0 {
		deadline = time.Now().Add(limit)
	}
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !again(err) || !deadline.IsZero() && time.Now().After(deadline) {
			return err
		}
		if each != nil {
			each(err)
		}
		if !Sleep(ctx, b.Delay(attempt)) {
			return err
		}
	}
}

// JetStream errors that a cluster settling gives for a while: it has not
// yet heard from enough servers to place a stream with the replicas asked
// for, or another process created the same stream or bucket a moment
// before, with other settings.
const (
	errCodeNoPeers     jetstream.ErrorCode = 10005
	errCodeNameInUse   jetstream.ErrorCode = 10058
	errCodeUnavailable jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable"
)

// Settling reports whether err is one a cluster gives while it settles:
// see the error codes above, and a request that timed out (a meta leader
// being elected) while ctx is still live.
func Settling(ctx context.Context, err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeNoPeers, errCodeNameInUse, errCodeUnavailable:
			return true
		}
		return false
	}
	return ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders))
}

// placementWait bounds how long [WhilePlacing] waits for a cluster to be
// able to place streams and buckets.
const placementWait = 30 * time.Second

// placing is the pause between two attempts of [WhilePlacing].
var placing = Backoff{Min: 250 * time.Millisecond, Max: 2 * time.Second}

// WhilePlacing runs setUp, and again while it fails because the cluster
// is settling (just started, a server away, other processes setting up the
// same pipeline), for up to 30 seconds. Each wait is logged to log, if
// not nil.
func WhilePlacing(ctx context.Context, log *slog.Logger, setUp func() error) error {
	var waiting func(error)
	if log != nil {
		waiting = func(err error) { log.Info("waiting for the cluster to place the streams", "err", err) }
	}
	return Do(ctx, placing, placementWait, func(err error) bool { return Settling(ctx, err) }, waiting, setUp)
}
