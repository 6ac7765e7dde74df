package lease

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
)

// DefaultTTL is how long a worker's heartbeat and its leases live without
// renewal: a process that dies is known dead, and what it held taken
// over, after about this long.
const DefaultTTL = 10 * time.Second

// Lease is a key of the leases bucket held by this process: created only
// if absent, renewed with a revision check, gone when not renewed within
// the bucket's TTL, so that another process may then take it.
type Lease struct {
	kv  jetstream.KeyValue
	key string
	ttl time.Duration
	rev uint64
}

// Acquire creates key in kv for holder. It reports false when another
// process holds the key.
func Acquire(ctx context.Context, kv jetstream.KeyValue, ttl time.Duration, key string, holder schema.LeaseHolder) (*Lease, bool, error) {
	b, err := json.Marshal(holder)
	if err != nil {
		return nil, false, err
	}
	rev, err := kv.Create(ctx, key, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &Lease{kv: kv, key: key, ttl: ttl, rev: rev}, true, nil
}

// Keep renews the lease every third of its TTL until ctx is done. If the
// lease is lost (another process holds the key, or no renewal succeeded
// for a whole TTL, so that another process may have taken it), it calls
// lost and returns.
func (l *Lease) Keep(ctx context.Context, lost func()) {
	renewed := time.Now()
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e, err := l.kv.Get(ctx, l.key)
		if err == nil && e.Revision() == l.rev {
			var rev uint64
			if rev, err = l.kv.Update(ctx, l.key, e.Value(), l.rev); err == nil {
				l.rev, renewed = rev, time.Now()
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, jetstream.ErrKeyNotFound) || schema.IsWrongRevision(err) || err == nil || time.Since(renewed) >= l.ttl {
			lost()
			return
		}
		// The server is away: try again, within the TTL.
	}
}

// Release deletes the lease so that another process may take it at once.
func (l *Lease) Release(ctx context.Context) error {
	return l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
}
