package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// ReplayResult counts what [Replay] did.
type ReplayResult struct {
	Replayed uint64 // put back on their stage's input and removed
	Skipped  uint64 // left in the dead-letter stream: not replayable, or of an earlier run
}

// Replay puts the dead letters of pipeline p that f selects back on the
// input of the stage that failed on them, where that stage alone reads
// them again, and removes each from the dead-letter stream once JetStream
// acknowledged its republication.
//
// A replay belongs to the run its dead letter came from (Sluice-Run): a
// process running that run processes it (a deployed pipeline, a running
// "sluice run"); if the run has finished, the next run of the pipeline
// resumes it for the replays alone (see package runner). So only dead
// letters of the latest run are replayed: those of an earlier run, whose
// records the latest run read again from its sources, are skipped with
// [ErrOlderRun]. A dead letter that does not name its run counts as the
// latest run's.
//
// Each replay gets a new Nats-Msg-Id, so that the streams' duplicate
// window does not drop it; replaying the same dead letter twice in the
// window puts it back once. Dead letters that cannot be replayed are
// skipped and counted; the error, if any, wraps [ErrNotReplayable] or
// [ErrOlderRun] for the first of them.
func Replay(ctx context.Context, nc *nats.Conn, p string, f Filter) (ReplayResult, error) {
	var res ReplayResult
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	str, err := dlqStream(ctx, js, p)
	if err != nil {
		return res, err
	}
	latest, err := latestRun(ctx, js, p)
	if err != nil {
		return res, fmt.Errorf("pipeline %q: %w", p, err)
	}
	var skipped error
	checked := make(map[string]error) // replay subject -> whether a consumer reads it
	var failure error
	err = eachDeadLetter(ctx, nc, p, f, func(dl DeadLetter) bool {
		whole, err := Whole(ctx, nc, dl)
		if err != nil {
			failure = err
			return false
		}
		dl.Data = whole
		m, err := replayMessage(p, dl, latest)
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
		if name := objectName(dl.Header); name != "" {
			if err := deleteWhole(ctx, js, p, func(n string) bool { return n == name }); err != nil {
				failure = fmt.Errorf("dead letter %d was replayed but its whole payload not removed: %w", dl.Seq, err)
				return false
			}
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

// latestRun returns the number of the latest run of pipeline p, as its
// run record says; 0 if there is none.
func latestRun(ctx context.Context, js jetstream.JetStream, p string) (uint64, error) {
	kv, err := js.KeyValue(ctx, schema.StateBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bucket %s: %w", schema.StateBucket, err)
	}
	rec, _, err := schema.GetJSON[schema.RunRecord](ctx, kv, schema.RunKey(p))
	if err != nil {
		return 0, fmt.Errorf("read run record: %w", err)
	}
	return rec.Run, nil
}

// replayMessage builds the message that puts dead letter dl back on the
// input of its stage: its original headers and payload, a new Nats-Msg-Id,
// the run it belongs to, on the subject of the upstream stream that only
// that stage reads. latest is the pipeline's latest run: a dead letter of
// an earlier one is refused.
func replayMessage(p string, dl DeadLetter, latest uint64) (*nats.Msg, error) {
	if dl.Subject == "" || dl.Stage == "" {
		return nil, fmt.Errorf("%w: a record the source could not read was never on a stream", ErrNotReplayable)
	}
	run := dl.Run
	if run == 0 {
		run = latest
	}
	if run < latest {
		return nil, fmt.Errorf("%w: it belongs to run %d, which is over: run %d has begun since", ErrOlderRun, run, latest)
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
		case stages.HeaderError, stages.HeaderStage, stages.HeaderDeliveries, stages.HeaderSubject, stages.HeaderInputID, stages.HeaderMsgID, stages.HeaderRun, stages.HeaderReadTime:
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
	if run != 0 {
		h.Set(stages.HeaderRun, strconv.FormatUint(run, 10))
	}
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
