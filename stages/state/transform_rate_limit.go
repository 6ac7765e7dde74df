package state

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/kvbucket"
)

// RateLimitBucket is the KV bucket where the rate_limit stages keep their
// shared token buckets, one key PIPELINE.STAGE each.
const RateLimitBucket = "sluice_rate_limit"

// maxBurstSeconds bounds burst/rate, so that the arithmetic in
// nanoseconds cannot overflow.
const maxBurstSeconds = 24 * 3600

func rateLimitSpec() stages.Spec {
	return stages.Spec{
		Name:    "rate_limit",
		Summary: "Pass records at most at a given rate, shared by every worker of the stage",
		Doc: `Passes each record on untouched, at most rate records per second ` +
			`over all the workers of the stage, in every process: a record waits ` +
			`until its worker may let it through (the wait ends early, and the ` +
			`record is retried, when the run stops). Records are delayed, never ` +
			`dropped; a NATS error is retried.

Design: the workers share one token bucket, kept in the KV bucket ` +
			RateLimitBucket + ` under the key PIPELINE.STAGE as a "theoretical ` +
			`arrival time" (the generic cell rate algorithm): each token is a ` +
			`time slot, 1/rate apart, and a slot may be taken up to burst/rate ` +
			`ahead of the clock. A worker takes a chunk of consecutive slots at ` +
			`once with a compare-and-set update of the key (about 1/20 s of the ` +
			`rate, at most half of burst, at least one), so the hot path makes a ` +
			`NATS round trip per chunk, not per record. A worker drops a token ` +
			`it could not use by burst/rate after its slot.

Bound: in any interval of T seconds the stage passes at most ` +
			`rate*T + 2*burst records (burst for slots taken ahead, burst for ` +
			`tokens used late), plus rate times the difference between the ` +
			`clocks of the hosts, since each worker reads its own clock. When ` +
			`the workers are busy unevenly, tokens that expire unused make the ` +
			`stage pass somewhat fewer than rate. A key left by a stage that no ` +
			`longer runs holds a few bytes; it can be deleted.

Example:

    - name: gentle
      transform: rate_limit
      with:
        rate: 50     # records per second
        burst: 10`,
		Params: []stages.Param{
			{Name: "rate", Type: stages.TypeFloat, Required: true, Doc: "Records per second over all workers of the stage; more than 0."},
			{Name: "burst", Type: stages.TypeInt, Default: 0, Doc: "Records that may pass at once above the steady rate; 0 takes rate/10, at least 1."},
		},
		Check:        checkRateLimit,
		NewTransform: newRateLimitTransform,
	}
}

func checkRateLimit(p stages.Params) error {
	r := p.Float("rate")
	if !(r > 0) || math.IsInf(r, 0) {
		return stages.ParamErrorf("rate", "must be a number more than 0 (got %g)", r)
	}
	b := p.Int("burst")
	if b < 0 {
		return stages.ParamErrorf("burst", "must be >= 0 (got %d)", b)
	}
	if float64(b)/r > maxBurstSeconds {
		return stages.ParamErrorf("burst", "must be at most a day's worth of records, %g (got %d)", r*maxBurstSeconds, b)
	}
	return nil
}

// rateLimitTransform lets records through as tokens of a token bucket
// shared in a KV key allow. Times are Unix nanoseconds of the wall clock,
// which every host shares (within its clock's error).
type rateLimitTransform struct {
	kv       jetstream.KeyValue
	key      string
	interval int64 // nanoseconds between two slots
	burst    int64 // slots that may be taken ahead of the clock
	chunk    int64 // slots taken per lease

	// The slots held: next, next+interval, ... left of them.
	next, left int64
	// The key as last read or written: its revision (0: absent) and the
	// theoretical arrival time it holds, the end of the slots taken.
	rev   uint64
	tat   int64
	known bool

	timer  *time.Timer
	closed bool
}

var _ stages.Transform = (*rateLimitTransform)(nil)

func newRateLimitTransform(p stages.Params, info stages.Info) (stages.Transform, error) {
	if err := checkRateLimit(p); err != nil {
		return nil, err
	}
	js, err := kvbucket.JetStream(info, "rate_limit")
	if err != nil {
		return nil, err
	}
	rate := p.Float("rate")
	burst := int64(p.Int("burst"))
	if burst == 0 {
		burst = max(1, int64(math.Ceil(rate/10)))
	}
	chunk := max(1, min(burst/2, int64(math.Ceil(rate/20))))
	ctx, cancel := context.WithTimeout(context.Background(), kvbucket.SetupTimeout)
	defer cancel()
	kv, err := kvbucket.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket:      RateLimitBucket,
		Description: "sluice rate_limit token buckets",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    kvbucket.Replicas(info),
	})
	if err != nil {
		return nil, fmt.Errorf("rate_limit: %w", err)
	}
	return &rateLimitTransform{
		kv:       kv,
		key:      keyPart(info.Pipeline) + "." + keyPart(info.Stage),
		interval: max(1, int64(math.Ceil(1e9/rate))),
		burst:    burst,
		chunk:    chunk,
	}, nil
}

// keyPart makes s fit in a KV key token: characters other than letters,
// digits, '-' and '_' become '_'; empty becomes "_".
func keyPart(s string) string { return bucketPart(s) }

func (t *rateLimitTransform) Process(ctx context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	if t.closed {
		return out, errors.New("rate_limit: transform is closed")
	}
	for {
		now := time.Now().UnixNano()
		// Drop the tokens whose slot is too old to use.
		if oldest := now - t.burst*t.interval; t.left > 0 && t.next < oldest {
			skip := (oldest - t.next + t.interval - 1) / t.interval
			skip = min(skip, t.left)
			t.left -= skip
			t.next += skip * t.interval
		}
		if t.left > 0 {
			t.left--
			t.next += t.interval
			return append(out, in), nil
		}
		if err := t.lease(ctx); err != nil {
			return out, err
		}
	}
}

// lease takes a chunk of slots from the shared bucket, waiting until they
// may be taken.
func (t *rateLimitTransform) lease(ctx context.Context) error {
	for {
		if !t.known {
			if err := t.read(ctx); err != nil {
				return err
			}
		}
		now := time.Now().UnixNano()
		start := max(t.tat, now)
		// The chunk may be taken once its last slot ends within burst
		// slots of now.
		if wait := start + t.chunk*t.interval - t.burst*t.interval - now; wait > 0 {
			if err := t.sleep(ctx, time.Duration(wait)); err != nil {
				return err
			}
			continue // try with what was read; a conflict reads again
		}
		tat := start + t.chunk*t.interval
		val := strconv.AppendInt(nil, tat, 10)
		var rev uint64
		var err error
		if t.rev == 0 {
			rev, err = t.kv.Create(ctx, t.key, val)
		} else {
			rev, err = t.kv.Update(ctx, t.key, val, t.rev)
		}
		switch {
		case err == nil:
			t.rev, t.tat = rev, tat
			t.next, t.left = start, t.chunk
			return nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			t.known = false // another worker took slots: read again
		default:
			t.known = false
			return fmt.Errorf("rate_limit: take tokens: %w", err)
		}
	}
}

// read loads the shared state.
func (t *rateLimitTransform) read(ctx context.Context) error {
	e, err := t.kv.Get(ctx, t.key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		t.rev, t.tat = 0, 0
	case err != nil:
		return fmt.Errorf("rate_limit: read tokens: %w", err)
	default:
		t.rev = e.Revision()
		// A value that is not a time (someone wrote the key) counts as
		// an idle bucket; the next update replaces it.
		t.tat, _ = strconv.ParseInt(string(e.Value()), 10, 64)
	}
	t.known = true
	return nil
}

// sleep waits for d or until ctx is done.
func (t *rateLimitTransform) sleep(ctx context.Context, d time.Duration) error {
	if t.timer == nil {
		t.timer = time.NewTimer(d)
	} else {
		t.timer.Reset(d)
	}
	select {
	case <-t.timer.C:
		return nil
	case <-ctx.Done():
		t.timer.Stop()
		return ctx.Err()
	}
}

func (t *rateLimitTransform) Close(context.Context) error {
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
	}
	return nil
}
