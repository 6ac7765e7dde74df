package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Run states, as the run record keeps them.
const (
	RunRunning     = "running"
	RunFinished    = "finished"
	RunInterrupted = "interrupted"
)

// RunRecord is what the state bucket keeps about a pipeline's runs under
// [RunKey]: the latest run and how it ended. A run that is still
// "running" when a new process starts was killed.
type RunRecord struct {
	Run   uint64 `json:"run"`
	State string `json:"state"` // running | finished | interrupted
}

// RunKey is the key of pipeline p's run record in the state bucket.
func RunKey(p string) string { return "run." + p }

// Checkpoint is what the state bucket keeps about a source under
// [CheckpointKey]: how many records of the run it had published, every
// one acknowledged, and the source's position after them.
type Checkpoint struct {
	Run      uint64 `json:"run"`
	Records  uint64 `json:"records"`
	Position []byte `json:"position,omitempty"` // from stages.Resumable
	Done     bool   `json:"done,omitempty"`     // the source had ended
	// Upto is how many records the source may have published: it stores
	// a higher Upto before it publishes past it, so that a resumed run
	// marks the records up to it that it publishes again as possible
	// copies (stages.HeaderRedelivered).
	Upto uint64 `json:"upto,omitempty"`
	// Dead and Dropped count the records up to Records that went to the
	// dead-letter stream or were dropped (on_error: drop); the others
	// were published.
	Dead    uint64 `json:"dead,omitempty"`
	Dropped uint64 `json:"dropped,omitempty"`
	// Fused holds, when stages run fused after the source (see
	// pipeline.Pipeline.Chains), what each counted of the records up to
	// Records: they are counted with the checkpoint, not by workers.
	Fused []StageCounts `json:"fused,omitempty"`
}

// StageCounts is what a stage run fused after a source counted in a run.
type StageCounts struct {
	Stage    string `json:"stage"`
	In       uint64 `json:"in"`
	Out      uint64 `json:"out"`
	Filtered uint64 `json:"filtered,omitempty"`
	Errors   uint64 `json:"errors,omitempty"`
	Dead     uint64 `json:"dead,omitempty"`
	Dropped  uint64 `json:"dropped,omitempty"`
}

// CheckpointKey is the key of the checkpoint of source stage s of
// pipeline p in the state bucket; s may be "*" in a filter.
func CheckpointKey(p, s string) string { return "source." + p + "." + s }

// Counts is what one worker of a stage counted in a run, stored under
// CountsKey before it answers a batch, so that the counts of a run
// resumed after a crash add up: the summary sums those of every worker
// that took part. Last lists, by stream, the sequences of the inputs of
// the last batch that it acknowledged or terminated: one of them
// delivered again (its acknowledgement lost with the process) was counted
// already.
type Counts struct {
	Run      uint64                 `json:"run"`
	In       uint64                 `json:"in"`
	Out      uint64                 `json:"out"`
	Filtered uint64                 `json:"filtered"`
	Errors   uint64                 `json:"errors"`
	Dead     uint64                 `json:"dead"`
	Dropped  uint64                 `json:"dropped"`
	Last     map[string][][2]uint64 `json:"last,omitempty"` // stream -> [first, last] ranges
	// Fused holds the counts of the stages that run fused after the
	// worker's stage, in its steps: they count the same inputs.
	Fused []StageCounts `json:"fused,omitempty"`
}

// CountsKey is the key of the counts of worker instance i (a unique name
// for one worker of one process) of stage s of pipeline p in the state
// bucket; s and i may be "*" in a filter.
func CountsKey(p, s, i string) string { return "counts." + p + "." + s + "." + i }

// PartitionLeasePrefix is the prefix of the keys, in the leases bucket,
// of the partitions of stage s of pipeline p that processes own; the
// partition number follows.
func PartitionLeasePrefix(p, s string) string { return "partition." + p + "." + s + "." }

// MemberLeasePrefix is the prefix of the keys, in the leases bucket, of
// the processes that share the partitions of stage s of pipeline p; the
// member's ID follows.
func MemberLeasePrefix(p, s string) string { return "member." + p + "." + s + "." }

// LeaseHolder is what a lease's value says about its holder.
type LeaseHolder struct {
	Worker string    `json:"worker"`
	Host   string    `json:"host"`
	PID    int       `json:"pid"`
	Since  time.Time `json:"since"`
}

// Bucket returns the configuration of the control bucket name (one of
// the *Bucket names). The TTL of the workers and leases buckets is the
// lease time: a process that stops renewing its entries loses them after
// it.
func Bucket(name string, replicas int, ttl time.Duration) jetstream.KeyValueConfig {
	desc := map[string]string{
		PipelinesBucket: "sluice deployed pipelines",
		WorkersBucket:   "sluice worker heartbeats",
		LeasesBucket:    "sluice source owners",
		StateBucket:     "sluice run records and checkpoints",
	}[name]
	history := uint8(1)
	if name == PipelinesBucket {
		history = 5 // the latest versions, for who deployed what
	}
	return jetstream.KeyValueConfig{
		Bucket:      name,
		Description: desc,
		Storage:     jetstream.FileStorage,
		History:     history,
		TTL:         ttl,
		Replicas:    replicas,
	}
}

// EnsureBucket opens the bucket of cfg, creating it if needed, or raising
// its copies to cfg.Replicas. An existing bucket keeps its TTL, and one
// that has more copies keeps them: pipelines share the control buckets,
// and one that asks for fewer copies does not lower them.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
	case err == nil:
		var st jetstream.KeyValueStatus
		if st, err = kv.Status(ctx); err == nil {
			if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo().Config.Replicas < cfg.Replicas {
				cfg.TTL = st.TTL()
				kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// GetJSON reads the JSON value of key; found is false when there is none.
func GetJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string) (v T, found bool, err error) {
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

// PutJSON stores v as the JSON value of key.
func PutJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, key, b)
	return err
}

// IsWrongRevision reports whether err is a KV update's "wrong last
// sequence": the entry changed since it was read.
func IsWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
