package runner

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
)

// stateBucket opens the sluice_state bucket, creating it with replicas
// copies if needed, or raising its copies to replicas.
func stateBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	return schema.EnsureBucket(ctx, js, schema.Bucket(schema.StateBucket, replicas, 0))
}

// BeginRun records the start of a run of p on the server behind nc and
// returns its number: the latest run, resumed, if it did not finish or if
// replayed dead letters of it wait in the stage streams (see package dlq),
// else a new one. The cluster's deploy begins its runs with it; [Open]
// does for the processes that run sources.
func BeginRun(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline) (run uint64, resumed bool, err error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, false, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	// A bucket just created on a cluster may not answer at once: the
	// record is written again while it settles (a record that landed is
	// then read back as this run, resumed).
	err = retry.WhilePlacing(ctx, nil, func() error {
		kv, err := stateBucket(ctx, js, p.Settings.Replicas)
		if err == nil {
			var b begun
			b, err = beginRun(ctx, kv, p.Name, false, func() (bool, error) { return replaysPending(ctx, js, p) })
			if err == nil && !b.resumed {
				err = forgetIntake(ctx, js, p.Name)
			}
			run, resumed = b.id, b.resumed
		}
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	return run, resumed, nil
}

// begun is how a process entered a run.
type begun struct {
	id      uint64
	resumed bool // the run is the latest, which had not finished or has replays to process
	replay  bool // the latest run had finished: it is resumed for its replayed dead letters
}

// beginRun records the start of a run of pipeline p: the latest run,
// resumed, if it did not finish, or if it did and replays reports that
// replayed dead letters of it wait; else a new one. fresh starts a new run
// even then.
func beginRun(ctx context.Context, kv jetstream.KeyValue, p string, fresh bool, replays func() (bool, error)) (begun, error) {
	last, found, err := schema.GetJSON[schema.RunRecord](ctx, kv, schema.RunKey(p))
	if err != nil {
		return begun{}, fmt.Errorf("read run record: %w", err)
	}
	b := begun{id: last.Run + 1}
	switch {
	case !found || fresh:
	case last.State != schema.RunFinished:
		b.id, b.resumed = last.Run, true
	default:
		pending, err := replays()
		if err != nil {
			return begun{}, fmt.Errorf("look for replayed dead letters: %w", err)
		}
		if pending {
			b.id, b.resumed, b.replay = last.Run, true, true
		}
	}
	if !b.resumed {
		if err := forgetCounts(ctx, kv, p); err != nil {
			return begun{}, fmt.Errorf("forget the counts of earlier runs: %w", err)
		}
	}
	return b, putRun(ctx, kv, p, schema.RunRecord{Run: b.id, State: schema.RunRunning})
}

// currentRun returns the number of the latest run of pipeline p, 0 if
// none.
func currentRun(ctx context.Context, kv jetstream.KeyValue, p string) (uint64, error) {
	rec, _, err := schema.GetJSON[schema.RunRecord](ctx, kv, schema.RunKey(p))
	if err != nil {
		return 0, fmt.Errorf("read run record: %w", err)
	}
	return rec.Run, nil
}

func putRun(ctx context.Context, kv jetstream.KeyValue, p string, rec schema.RunRecord) error {
	if err := schema.PutJSON(ctx, kv, schema.RunKey(p), rec); err != nil {
		return fmt.Errorf("write run record: %w", err)
	}
	return nil
}
