package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// DeadLetter is one message of a pipeline's dead-letter stream.
type DeadLetter struct {
	Seq        uint64    // sequence in the dead-letter stream
	Time       time.Time // when it was dead-lettered
	Stage      string    // the stage that failed on it
	Error      string    // why
	Deliveries uint64    // attempts made; 0 for a record a source could not read
	Run        uint64    // the run it belongs to; 0 if it does not say (dead-lettered before sluice recorded it)
	Subject    string    // the subject its input was on; empty for a source's
	Header     nats.Header
	Data       []byte // the payload; for a Truncated one, its start
	// Truncated tells that the payload was too large for NATS: Data is
	// its start, and Object, unless empty, names where the engine kept it
	// whole (see [Whole]).
	Truncated bool
	Object    string
}

// Filter selects dead letters; its zero value selects them all.
type Filter struct {
	Stage string // only those of this stage, unless empty
	Run   uint64 // only those of this run, unless 0
}

// match reports whether f selects dl; the stage is filtered on the server.
func (f Filter) match(dl DeadLetter) bool { return f.Run == 0 || dl.Run == f.Run }

// List returns the dead letters of pipeline p that f selects, oldest
// first, at most limit unless it is 0. An error wraps [ErrNoPipeline] if
// p has never run on the server.
func List(ctx context.Context, nc *nats.Conn, p string, f Filter, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := eachDeadLetter(ctx, nc, p, f, func(dl DeadLetter) bool {
		out = append(out, dl)
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// dlqStream returns the dead-letter stream of pipeline p.
func dlqStream(ctx context.Context, js jetstream.JetStream, p string) (jetstream.Stream, error) {
	name := schema.DLQStreamName(p)
	str, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("pipeline %q: no dead-letter stream %s: %w", p, name, ErrNoPipeline)
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline %q: %w", p, err)
	}
	return str, nil
}

// filterSubject returns the subject of the dead letters of stage, or of
// every stage if it is empty.
func filterSubject(p, stage string) string {
	if stage == "" {
		return schema.DLQSubjects(p)[0]
	}
	return schema.DLQSubject(p, stage)
}

// eachDeadLetter calls fn on the dead letters of pipeline p that f
// selects, in order, until fn returns false.
func eachDeadLetter(ctx context.Context, nc *nats.Conn, p string, f Filter, fn func(DeadLetter) bool) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	str, err := dlqStream(ctx, js, p)
	if err != nil {
		return err
	}
	name := schema.DLQStreamName(p)
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filterSubject(p, f.Stage)}}
	cons, err := str.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pipeline %q: read %s: %w", p, name, err)
	}
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return fmt.Errorf("pipeline %q: read %s: %w", p, name, err)
		}
		n := 0
		for jm := range batch.Messages() {
			n++
			meta, err := jm.Metadata()
			if err != nil {
				return fmt.Errorf("pipeline %q: read %s: %w", p, name, err)
			}
			h := jm.Headers()
			deliveries, _ := strconv.ParseUint(h.Get(stages.HeaderDeliveries), 10, 64)
			run, _ := strconv.ParseUint(h.Get(stages.HeaderRun), 10, 64)
			dl := DeadLetter{
				Seq:        meta.Sequence.Stream,
				Time:       meta.Timestamp,
				Stage:      h.Get(stages.HeaderStage),
				Error:      h.Get(stages.HeaderError),
				Deliveries: deliveries,
				Run:        run,
				Subject:    h.Get(stages.HeaderSubject),
				Header:     h,
				Data:       jm.Data(),
				Truncated:  h.Get(stages.HeaderTruncated) != "",
				Object:     h.Get(stages.HeaderObject),
			}
			if f.match(dl) && !fn(dl) {
				return nil
			}
			if meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("pipeline %q: read %s: %w", p, name, err)
		}
		if n == 0 {
			return nil // nothing pending
		}
	}
}
