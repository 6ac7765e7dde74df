package dlq

import "errors"

// ErrNotReplayable is returned by [Replay] for dead letters it cannot put
// back: records a source could not read, which were never on a stream,
// and messages of a stage whose consumer does not read replays.
var ErrNotReplayable = errors.New("dead letter cannot be replayed")

// ErrOlderRun is returned by [Replay] for dead letters of a run older
// than the pipeline's latest: that run is over, and the latest one read
// the sources again, so replaying them would process their records twice.
// [Purge] with [Filter.Run] removes them.
var ErrOlderRun = errors.New("dead letter of an earlier run")

// ErrNoPipeline is returned when the pipeline has no dead-letter stream on
// the server: it has never run there.
var ErrNoPipeline = errors.New("pipeline has not run on this server")
