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
// returns its number: the latest run, resumed, if it did not finish, else
// a new one. The cluster's deploy begins its runs with it; [Open] does
// for the processes that run sources.
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
			run, resumed, err = beginRun(ctx, kv, p.Name, false)
		}
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("pipeline %q: %w", p.Name, err)
	}
	return run, resumed, nil
}

// beginRun records the start of a run of pipeline p and returns its number
// and whether it resumes the latest run, which did not finish. fresh
// starts a new run even then.
func beginRun(ctx context.Context, kv jetstream.KeyValue, p string, fresh bool) (id uint64, resumed bool, err error) {
	last, found, err := schema.GetJSON[schema.RunRecord](ctx, kv, schema.RunKey(p))
	if err != nil {
		return 0, false, fmt.Errorf("read run record: %w", err)
	}
	rec := schema.RunRecord{Run: last.Run + 1, State: schema.RunRunning}
	if found && last.State != schema.RunFinished && !fresh {
		rec.Run, resumed = last.Run, true
	}
	return rec.Run, resumed, putRun(ctx, kv, p, rec)
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
