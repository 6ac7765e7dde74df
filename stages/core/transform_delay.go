package core

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

func delaySpec() stages.Spec {
	return stages.Spec{
		Name:    "delay",
		Summary: "Hold each record until a time after it was published, or a time it names",
		Doc: `Passes each message on untouched once it is due, and not before. With ` +
			`duration it is due that long after the upstream stream stored it (so ` +
			`time it spent waiting upstream counts); with until, at the time the ` +
			`expression gives for the record: a time (expr's date(...), ` +
			`msg.event_time + duration("1m")), an RFC 3339 string, or a number of ` +
			`Unix seconds (fractional ones too) or, from 1e11 on, Unix milliseconds, ` +
			`as event_time takes it. ` +
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
		Params: []stages.Param{
			{Name: "duration", Type: stages.TypeDuration, Doc: "How long after it was published each record is due."},
			{Name: "until", Type: stages.TypeExpr, Doc: "Expression giving the time each record is due: a time, an RFC 3339 string, Unix seconds or Unix milliseconds."},
			{Name: "max_delay", Type: stages.TypeDuration, Default: time.Hour, Doc: "With until: a record due more than this far ahead goes to the dead-letter stream instead of holding its worker."},
		},
		Check:        checkDelay,
		NewTransform: newDelayTransform,
	}
}

func checkDelay(p stages.Params) error {
	switch {
	case p.Has("duration") == p.Has("until"):
		return stages.ParamErrorf("duration", "give exactly one of duration and until")
	case p.Has("duration") && p.Duration("duration") <= 0:
		return stages.ParamErrorf("duration", "must be more than 0")
	case p.Has("until") && p.Duration("max_delay") <= 0:
		return stages.ParamErrorf("max_delay", "must be more than 0")
	}
	return nil
}

// delayTransform holds each input until it is due.
type delayTransform struct {
	duration time.Duration
	until    *stages.Expr // nil with duration
	maxDelay time.Duration
	now      func() time.Time
}

var _ stages.Transform = (*delayTransform)(nil)

func newDelayTransform(p stages.Params, _ stages.Info) (stages.Transform, error) {
	if err := checkDelay(p); err != nil {
		return nil, err
	}
	t := &delayTransform{duration: p.Duration("duration"), maxDelay: p.Duration("max_delay"), now: time.Now}
	if p.Has("until") {
		e, err := stages.CompileParam(p, "until")
		if err != nil {
			return nil, err
		}
		t.until = e
	}
	return t, nil
}

func (t *delayTransform) Process(ctx context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
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
		if due, err = stages.EventTime(v); err != nil {
			return out, stages.Permanent(fmt.Errorf("delay: until %q: %w", errtext.ShortSource(t.until.String()), err))
		}
		if ahead := due.Sub(now); ahead > t.maxDelay {
			return out, stages.Permanent(fmt.Errorf("delay: until %q is %s ahead, more than max_delay %s", errtext.ShortSource(t.until.String()), ahead.Round(time.Second), t.maxDelay))
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
