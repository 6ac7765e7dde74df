package stages

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Role is what a stage does in a pipeline: produce, transform or consume
// messages. It is also the YAML key that names the stage's type.
type Role int

// The roles, in the order they appear in a pipeline.
const (
	RoleSource Role = iota + 1
	RoleTransform
	RoleSink
)

// String returns the YAML key of the role: "source", "transform" or "sink".
func (r Role) String() string {
	switch r {
	case RoleSource:
		return "source"
	case RoleTransform:
		return "transform"
	case RoleSink:
		return "sink"
	}
	return "unknown"
}

// MarshalText encodes the role as its YAML key.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a role from its YAML key.
func (r *Role) UnmarshalText(b []byte) error {
	for _, role := range Roles {
		if role.String() == string(b) {
			*r = role
			return nil
		}
	}
	return fmt.Errorf("unknown role %q", b)
}

// Roles lists every role, in pipeline order.
var Roles = []Role{RoleSource, RoleTransform, RoleSink}

// Source produces the messages that enter a pipeline. The runner calls Read
// from one goroutine; a source need not be safe for concurrent use.
//
// A source that knows a stable identity for a record, such as the stream
// sequence of a message it consumed or a client's idempotency key, sets it
// as the [HeaderMsgID] header of the message: the runner derives the
// published ID from it, so a record read twice is stored once (within the
// pipeline's dedup_window). Otherwise the runner numbers records in the
// order read. A source whose upstream waits for an acknowledgement sets
// [Message.OnAck].
type Source interface {
	// Read returns the next message. It returns io.EOF when a bounded source
	// has no more messages (the message returned with io.EOF, if any, is
	// ignored), and ctx.Err() when ctx is done before a message is ready.
	// Any other error stops the run.
	Read(ctx context.Context) (*Message, error)
	// Close releases the source's resources.
	Close(ctx context.Context) error
}

// Resumable is a Source that can continue a run where an earlier process
// stopped, even one that was killed. The runner asks for a checkpoint after
// a Read now and then and stores it once every message read up to it is
// acknowledged by JetStream. When a run is resumed, the runner builds the
// source afresh and calls Resume with the last checkpoint stored, before
// the first Read; messages read after that checkpoint are read again and
// their republished copies dropped by the streams' duplicate window.
type Resumable interface {
	Source
	// Checkpoint returns the position after the last message Read
	// returned, in a form Resume accepts.
	Checkpoint() ([]byte, error)
	// Resume moves the source to a position Checkpoint returned.
	Resume(checkpoint []byte) error
}

// Lagging is a Source that knows how far behind what it reads it is: the
// age of the oldest record it has not read yet, or of the last it read
// while more wait; 0 when it has caught up. The runner asks once per batch
// it publishes, when the process exports metrics
// (sluice_source_lag_seconds). Lag is called from the runner's publishing
// goroutine while Read may run on another: it must be safe for that.
// Of the built-in sources, jetstream reports it.
type Lagging interface {
	Source
	Lag() time.Duration
}

// Transform turns one input message into zero, one or many outputs. The
// runner builds one Transform per worker, so Process is never called
// concurrently on one value.
type Transform interface {
	// Process appends the outputs for in to out and returns the extended
	// slice, in the manner of strconv.AppendInt. Returning out unchanged with
	// a nil error filters the input. A Transform may modify in and append it
	// as its own output.
	//
	// An error retries the input with backoff; an error marked with
	// [Permanent] (or wrapping [ErrPermanent]) sends it to the dead-letter
	// stream at once. Outputs appended before an error are discarded.
	Process(ctx context.Context, in *Message, out []*Message) ([]*Message, error)
	// Close releases the transform's resources.
	Close(ctx context.Context) error
}

// Sink writes messages out of the pipeline. The runner builds one Sink per
// sink stage per process and calls Write from every worker of the stage, so
// Write must be safe for concurrent use.
type Sink interface {
	// Write writes a batch. When it returns nil, every message of the batch
	// is as durable as the sink promises (its documentation says how) and
	// the runner acknowledges the inputs. A *[BatchError] reports which
	// messages failed; any other error fails the whole batch. Errors are
	// retried with backoff unless marked [Permanent].
	Write(ctx context.Context, batch []*Message) error
	// Close flushes what is buffered, makes it durable and releases the
	// sink's resources.
	Close(ctx context.Context) error
}

// Info tells a stage instance where it runs. The runner fills it in.
type Info struct {
	// Pipeline and Stage are the names from the pipeline file.
	Pipeline string
	Stage    string
	// Worker is the 0-based index of the worker within this process.
	Worker int
	// WorkerID is the stable name of the process among those that run the
	// pipeline (sluice worker --id, the host name by default): a sink that
	// writes one file per process puts it in the file's name.
	WorkerID string
	// Run is the number of the pipeline's run, 1 for the first. Resumed
	// tells that the run did not start in this process: it was interrupted
	// and this process continues it, or another process started it. A sink
	// keeps what the run wrote before instead of starting over.
	Run     uint64
	Resumed bool
	// DedupWindow is how long the pipeline's streams remember message IDs
	// to drop duplicates; a sink that deduplicates remembers what it wrote
	// for as long.
	DedupWindow time.Duration
	// Logger carries the pipeline and stage attributes; never nil when the
	// runner builds the stage.
	Logger *slog.Logger
	// Stdin and Stdout are the process's standard streams, replaceable when
	// sluice is embedded or tested.
	Stdin  io.Reader
	Stdout io.Writer
	// Conn is the NATS connection the pipeline runs on, for a stage that
	// keeps state in NATS (a KV bucket) or talks to NATS subjects and
	// streams of its own. It is nil when no runner built the stage. A
	// stage must not close or drain it.
	Conn *nats.Conn
	// Replicas is how many servers of a JetStream cluster keep a copy of
	// the pipeline's streams (settings.replicas): a stage that creates a
	// stream or bucket of its own keeps as many. 0 means 1.
	Replicas int
	// State is the pipeline's state bucket (sluice_state), where a
	// [Windowed] transform checkpoints; nil when no runner built the stage.
	State jetstream.KeyValue
}

// EndOfTime is the watermark once every source of a run has ended and
// everything before a stage has drained: every window closes.
// It is the latest time in whole milliseconds that UnixNano can hold
// (in the year 2262).
var EndOfTime = time.UnixMilli(math.MaxInt64 / 1_000_000)

// A Windowed transform keeps state by partition of its input and acts on
// the watermark: a stage of a type whose [Spec] sets Watermarks reads a
// partitioned stage, and its transforms implement Windowed. For each
// worker the runner:
//
//   - calls Assign before the first message of a partition the worker
//     takes (at start, or when the partition moves to it), which loads the
//     partition's state from its last checkpoint, replacing what the
//     transform held of it, and returns the runner's own bytes stored with
//     it (see Checkpoint);
//   - sets Meta.Partition and Meta.Watermark on each message given to
//     Process;
//   - calls Advance when the partition's watermark moves: after a message
//     whose stamp moved it, on a watermark tick, and with [EndOfTime] once
//     no more input can come;
//   - calls Checkpoint after the outputs of a batch are stored and before
//     its inputs are acknowledged, with the runner's bytes for each
//     partition changed (its watermark tracking), to be stored together
//     with the partition's state.
//
// A message already reflected in a checkpoint can be delivered again
// (the acknowledgement was lost): the transform recognises it by its
// stream and sequence and ignores it.
type Windowed interface {
	Transform
	Assign(ctx context.Context, partition int) (runner []byte, err error)
	Advance(ctx context.Context, partition int, watermark time.Time, out []*Message) ([]*Message, error)
	Checkpoint(ctx context.Context, runner map[int][]byte) error
}
