package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// ErrNotReplayable is returned by [Replay] for dead letters it
// cannot put back: records a source could not read, which were never on a
// stream, and messages of a stage whose consumer does not read replays.
var ErrNotReplayable = errors.New("dead letter cannot be replayed")

// DeadLetter is one message of a pipeline's dead-letter stream.
type DeadLetter struct {
	Seq        uint64    // sequence in the dead-letter stream
	Time       time.Time // when it was dead-lettered
	Stage      string    // the stage that failed on it
	Error      string    // why
	Deliveries uint64    // attempts made; 0 for a record a source could not read
	Subject    string    // the subject its input was on; empty for a source's
	Header     nats.Header
	Data       []byte
}

// List returns the dead letters of pipeline p, oldest first: those
// of stage only unless it is empty, at most limit unless it is 0.
func List(ctx context.Context, nc *nats.Conn, p, stage string, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := eachDeadLetter(ctx, nc, p, stage, func(dl DeadLetter) bool {
		out = append(out, dl)
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// eachDeadLetter calls fn on the dead letters of pipeline p (of stage
// only, unless it is empty) in order, until fn returns false.
func eachDeadLetter(ctx context.Context, nc *nats.Conn, p, stage string, fn func(DeadLetter) bool) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	name := schema.DLQStreamName(p)
	str, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("pipeline %q: no dead-letter stream %s: the pipeline has not run on this server", p, name)
	}
	if err != nil {
		return fmt.Errorf("pipeline %q: %w", p, err)
	}
	cfg := jetstream.OrderedConsumerConfig{}
	if stage != "" {
		cfg.FilterSubjects = []string{schema.DLQSubject(p, stage)}
	}
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
			dl := DeadLetter{
				Seq:        meta.Sequence.Stream,
				Time:       meta.Timestamp,
				Stage:      h.Get(stages.HeaderStage),
				Error:      h.Get(stages.HeaderError),
				Deliveries: deliveries,
				Subject:    h.Get(stages.HeaderSubject),
				Header:     h,
				Data:       jm.Data(),
			}
			if !fn(dl) {
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

// ReplayResult counts what [Replay] did.
type ReplayResult struct {
	Replayed uint64 // put back on their stage's input and removed
	Skipped  uint64 // left in the dead-letter stream: not replayable
}

// Replay puts the dead letters of pipeline p (of stage only,
// unless it is empty) back on the input of the stage that failed on them,
// where that stage alone reads them again, and removes each from the
// dead-letter stream once JetStream acknowledged its republication. Each
// replay gets a new Nats-Msg-Id, so that the streams' duplicate window does
// not drop it; replaying the same dead letter twice in the window puts it
// back once. Dead letters that cannot be replayed are skipped and counted;
// the error, if any, wraps [ErrNotReplayable] for the first of them.
func Replay(ctx context.Context, nc *nats.Conn, p, stage string) (ReplayResult, error) {
	var res ReplayResult
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	str, err := js.Stream(ctx, schema.DLQStreamName(p))
	if err != nil {
		return res, fmt.Errorf("pipeline %q: %w", p, err)
	}
	var skipped error
	checked := make(map[string]error) // replay subject -> whether a consumer reads it
	var failure error
	err = eachDeadLetter(ctx, nc, p, stage, func(dl DeadLetter) bool {
		m, err := replayMessage(p, dl)
		if err == nil {
			err = checkReplayReader(ctx, js, checked, p, m.Subject, dl.Stage)
		}
		if err != nil {
			res.Skipped++
			if skipped == nil {
				skipped = fmt.Errorf("dead letter %d of stage %q: %w", dl.Seq, dl.Stage, err)
			}
			return true
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			failure = fmt.Errorf("replay dead letter %d: %w", dl.Seq, err)
			return false
		}
		if err := str.DeleteMsg(ctx, dl.Seq); err != nil {
			failure = fmt.Errorf("dead letter %d was replayed but not removed: %w", dl.Seq, err)
			return false
		}
		res.Replayed++
		return true
	})
	if err != nil {
		return res, err
	}
	if failure != nil {
		return res, fmt.Errorf("pipeline %q: %w", p, failure)
	}
	if skipped != nil {
		return res, fmt.Errorf("pipeline %q: %d dead letters not replayed; %w", p, res.Skipped, skipped)
	}
	return res, nil
}

// replayMessage builds the message that puts dead letter dl back on the
// input of its stage: its original headers and payload, a new Nats-Msg-Id,
// on the subject of the upstream stream that only that stage reads.
func replayMessage(p string, dl DeadLetter) (*nats.Msg, error) {
	if dl.Subject == "" || dl.Stage == "" {
		return nil, fmt.Errorf("%w: a record the source could not read was never on a stream", ErrNotReplayable)
	}
	prefix := "sluice." + p + "."
	rest, ok := strings.CutPrefix(dl.Subject, prefix)
	if !ok {
		return nil, fmt.Errorf("%w: its subject %q is not one of pipeline %q", ErrNotReplayable, dl.Subject, p)
	}
	upstream, sub, _ := strings.Cut(rest, ".")
	h := make(nats.Header, len(dl.Header))
	for k, v := range dl.Header {
		switch k {
		case stages.HeaderError, stages.HeaderStage, stages.HeaderDeliveries, stages.HeaderSubject, stages.HeaderInputID, stages.HeaderMsgID:
		default:
			h[k] = v
		}
	}
	// The input's ID with a suffix: the lineage of what the stage makes of
	// it stays unique, and a second replay of the same dead letter within
	// the duplicate window is dropped.
	id := dl.Header.Get(stages.HeaderInputID)
	if id == "" {
		id = p + "/" + upstream + "/" + dl.Stage + "-dlq-" + strconv.FormatUint(dl.Seq, 10)
	}
	h.Set(stages.HeaderMsgID, id+"/replay"+strconv.FormatUint(dl.Seq, 10))
	subject := schema.ReplaySubject(p, upstream, dl.Stage)
	if k, err := strconv.Atoi(sub); err == nil && k >= 0 {
		// From partition k of a partitioned stage: back to that partition.
		subject += "." + sub
	}
	return &nats.Msg{Subject: subject, Header: h, Data: dl.Data}, nil
}

// checkReplayReader makes sure the consumer of stage reads subject: a
// replay nobody reads would be lost in an interest stream.
func checkReplayReader(ctx context.Context, js jetstream.JetStream, checked map[string]error, p, subject, stage string) error {
	if err, ok := checked[subject]; ok {
		return err
	}
	upstream := strings.TrimPrefix(subject, "sluice."+p+".")
	upstream, _, _ = strings.Cut(upstream, ".")
	consumer := schema.ConsumerName(stage)
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		if k, err := strconv.Atoi(subject[i+1:]); err == nil && strings.HasSuffix(subject[:i], "."+stage) {
			consumer = schema.PartitionConsumerName(stage, k)
		}
	}
	err := func() error {
		c, err := js.Consumer(ctx, schema.StreamName(p, upstream), consumer)
		if err != nil {
			return fmt.Errorf("%w: stage %q has no consumer on the output of %q (%v)", ErrNotReplayable, stage, upstream, err)
		}
		cfg := c.CachedInfo().Config
		if cfg.FilterSubject != subject && !slices.Contains(cfg.FilterSubjects, subject) {
			return fmt.Errorf("%w: the consumer of stage %q does not read replays; run the pipeline once with this version of sluice to update it", ErrNotReplayable, stage)
		}
		return nil
	}()
	checked[subject] = err
	return err
}
