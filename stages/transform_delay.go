package stages

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

func delaySpec() Spec {
	return Spec{
		Name:    "delay",
		Summary: "Hold each record until a time after it was published, or a time it names",
		Doc: `Passes each message on untouched once it is due, and not before. With ` +
			`duration it is due that long after the upstream stream stored it (so ` +
			`time it spent waiting upstream counts); with until, at the time the ` +
			`expression gives for the record: a time (expr's date(...), ` +
			`msg.event_time + duration("1m")), an RFC 3339 string, or a number of ` +
			`Unix seconds (fractional ones too: write ts / 1000 for milliseconds). ` +
			`A record already due passes at once. Exactly one of duration and until ` +
			`is given.

While a record waits, the runner tells JetStream it is in progress, as ` +
			`it does for every record a process holds, so delays longer than the ` +
			`pipeline's ack_wait work. A worker handles ` +
			`its records one after another in the order they came, so a record due ` +
			`late holds back those behind it (with duration they are due in order ` +
			`anyway); and a process holds at most a few thousand records per worker ` +
			`(its batch and the next one waiting), so when more arrive per delay than ` +
			`that, records leave later than due, none lost: add replicas. When the ` +
			`run stops, a record still waiting holds the stop up to its shutdown ` +
			`timeout, then is given back to JetStream to be delivered again.

With duration the payload is not read. With until, a record that is not ` +
			`a JSON object, an until that fails on the record or gives something ` +
			`that is not a time, or a time more than max_delay ahead sends the ` +
			`message to the dead-letter stream.

Example:

    - name: cool-off
      transform: delay
      with:
        until: 'date(created_at) + duration("15m")'`,
		Params: []Param{
			{Name: "duration", Type: TypeDuration, Doc: "How long after it was published each record is due."},
			{Name: "until", Type: TypeExpr, Doc: "Expression giving the time each record is due: a time, an RFC 3339 string or Unix seconds."},
			{Name: "max_delay", Type: TypeDuration, Default: time.Hour, Doc: "With until: a record due more than this far ahead goes to the dead-letter stream instead of holding its worker."},
		},
		Check:        checkDelay,
		NewTransform: newDelayTransform,
	}
}

func checkDelay(p Params) error {
	switch {
	case p.Has("duration") == p.Has("until"):
		return paramError("duration", "give exactly one of duration and until")
	case p.Has("duration") && p.Duration("duration") <= 0:
		return paramError("duration", "must be more than 0")
	case p.Has("until") && p.Duration("max_delay") <= 0:
		return paramError("max_delay", "must be more than 0")
	}
	return nil
}

// delayTransform holds each input until it is due.
type delayTransform struct {
	duration time.Duration
	until    *Expr // nil with duration
	maxDelay time.Duration
	now      func() time.Time
}

var _ Transform = (*delayTransform)(nil)

func newDelayTransform(p Params, _ Info) (Transform, error) {
	if err := checkDelay(p); err != nil {
		return nil, err
	}
	t := &delayTransform{duration: p.Duration("duration"), maxDelay: p.Duration("max_delay"), now: time.Now}
	if p.Has("until") {
		e, err := compileParam(p, "until")
		if err != nil {
			return nil, err
		}
		t.until = e
	}
	return t, nil
}

func (t *delayTransform) Process(ctx context.Context, in *Message, out []*Message) ([]*Message, error) {
	now := t.now()
	var due time.Time
	if t.until == nil {
		published := in.Meta.Published
		if published.IsZero() { // not read from a stream: published now
			published = now
		}
		due = published.Add(t.duration)
	} else {
		v, err := t.until.Eval(in)
		if err != nil {
			return out, err
		}
		if due, err = dueTime(v); err != nil {
			return out, Permanent(fmt.Errorf("delay: until %q: %w", shortSource(t.until.String()), err))
		}
		if ahead := due.Sub(now); ahead > t.maxDelay {
			return out, Permanent(fmt.Errorf("delay: until %q is %s ahead, more than max_delay %s", shortSource(t.until.String()), ahead.Round(time.Second), t.maxDelay))
		}
	}
	if wait := due.Sub(now); wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return out, ctx.Err() // not handled: delivered again later
		}
	}
	return append(out, in), nil
}

func (t *delayTransform) Close(context.Context) error { return nil }

// maxUnixSeconds bounds the numbers an until expression may give: 1e11
// seconds is in the year 5138, and milliseconds of today are above it.
const maxUnixSeconds = 1e11

// dueTime converts what an until expression gave into a time.
func dueTime(v any) (time.Time, error) {
	var secs float64
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(x))
		if err != nil {
			return time.Time{}, fmt.Errorf("gave a string that is not an RFC 3339 time")
		}
		return t, nil
	case int:
		secs = float64(x)
	case int64:
		secs = float64(x)
	case uint64:
		secs = float64(x)
	case float64:
		secs = x
	default:
		return time.Time{}, fmt.Errorf("gave %s, want a time, an RFC 3339 string or Unix seconds", jsonKindOf(v))
	}
	if math.IsNaN(secs) || math.Abs(secs) >= maxUnixSeconds {
		return time.Time{}, fmt.Errorf("gave %v, too large for Unix seconds (for milliseconds divide by 1000)", secs)
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), nil
}
