package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
)

// Run states, as the run record keeps them.
const (
	stateRunning     = "running"
	stateFinished    = "finished"
	stateInterrupted = "interrupted"
)

// runRecord is what the state bucket keeps about a pipeline's runs: the
// latest run and how it ended. A run that is still "running" when a new
// process starts was killed.
type runRecord struct {
	Run   uint64 `json:"run"`
	State string `json:"state"` // running | finished | interrupted
}

func runKey(p string) string { return "run." + p }

// checkpoint is what the state bucket keeps about a source: how many
// records of the run it had published, every one acknowledged, and the
// source's position after them.
type checkpoint struct {
	Run      uint64 `json:"run"`
	Records  uint64 `json:"records"`
	Position []byte `json:"position,omitempty"` // from stages.Resumable
	Done     bool   `json:"done,omitempty"`     // the source had ended
}

func checkpointKey(p, s string) string { return "source." + p + "." + s }

// stateBucket opens the sluice_state bucket, creating it with replicas
// copies if needed, or raising its copies to replicas. Pipelines share the
// bucket: one that asks for fewer copies does not lower them.
func stateBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	return ensureBucket(ctx, js, controlBucket(pipeline.StateBucket, replicas, 0))
}

// beginRun records the start of a run of pipeline p and returns its number
// and whether it resumes the latest run, which did not finish. fresh
// starts a new run even then.
func beginRun(ctx context.Context, kv jetstream.KeyValue, p string, fresh bool) (id uint64, resumed bool, err error) {
	last, found, err := getJSON[runRecord](ctx, kv, runKey(p))
	if err != nil {
		return 0, false, fmt.Errorf("read run record: %w", err)
	}
	rec := runRecord{Run: last.Run + 1, State: stateRunning}
	if found && last.State != stateFinished && !fresh {
		rec.Run, resumed = last.Run, true
	}
	return rec.Run, resumed, putRun(ctx, kv, p, rec)
}

// currentRun returns the number of the latest run of pipeline p, 0 if
// none.
func currentRun(ctx context.Context, kv jetstream.KeyValue, p string) (uint64, error) {
	rec, _, err := getJSON[runRecord](ctx, kv, runKey(p))
	if err != nil {
		return 0, fmt.Errorf("read run record: %w", err)
	}
	return rec.Run, nil
}

func putRun(ctx context.Context, kv jetstream.KeyValue, p string, rec runRecord) error {
	if err := putJSON(ctx, kv, runKey(p), rec); err != nil {
		return fmt.Errorf("write run record: %w", err)
	}
	return nil
}

// getJSON reads the JSON value of key; found is false when there is none.
func getJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string) (v T, found bool, err error) {
	entry, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	if err := json.Unmarshal(entry.Value(), &v); err != nil {
		return v, false, fmt.Errorf("%s: %w", key, err)
	}
	return v, true, nil
}

func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, key, b)
	return err
}
