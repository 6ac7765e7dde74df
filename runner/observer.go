package runner

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/stages"
)

// Observer watches the stages of a run batch by batch, for metrics: the
// runner tells it how long each batch took, how many records it held and
// how many were retries, how long each write of a sink took, how old the
// records a sink wrote were (source read to sink write), and how far
// behind a source that knows it is ([stages.Lagging]).
//
// The runner calls it per batch, never per record, so that its cost does
// not grow with the records: with [Options].Observer nil it does nothing
// and allocates nothing. A source stamps [stages.HeaderReadTime] on its
// records only when there is an Observer.
type Observer interface {
	// Stage returns what observes stage of pipeline (of role) in this
	// process, or nil to observe nothing of it. It is called once per
	// source and once per worker of a transform or sink stage, when the
	// run starts them, and may return the same StageObserver each time.
	Stage(pipeline, stage string, role stages.Role) StageObserver
}

// StageObserver receives the figures of one stage. Its methods are called
// from the stage's workers concurrently; they must be safe for concurrent
// use, must not block, and must not keep the slices they are given.
type StageObserver interface {
	// Batch is called once per batch the stage handled.
	Batch(BatchFigures)
	// Written is called once per call of a sink's Write, with how long it
	// took and how many messages it was given.
	Written(d time.Duration, n int)
	// Lag is called, for a source that implements [stages.Lagging], once
	// per batch it published, with what Lag reported.
	Lag(time.Duration)
}

// BatchFigures are what a stage did with one batch.
type BatchFigures struct {
	// Records is the number of inputs of the batch (a source: records
	// read), watermark ticks and end markers not included.
	Records int
	// Retries counts the inputs delivered more than once (JetStream's
	// NumDelivered > 1) and the attempts the worker made again in place.
	Retries int
	// Duration is how long the stage took for the batch: a transform,
	// running it on every input; a sink, its writes, retries in place
	// included; a source, publishing the batch until JetStream had it.
	Duration time.Duration
	// Latencies holds, for a sink, the time from the source's read to
	// the sink's write of each record written that carried
	// [stages.HeaderReadTime]. Valid only during the call.
	Latencies []time.Duration
}

// stageObs is a worker's or source's view of the observer: nil when there
// is none, and every method of a nil *stageObs does nothing.
type stageObs struct {
	obs       StageObserver
	lagging   stages.Lagging // a source that reports its lag, or nil
	start     time.Time      // when the batch in hand began
	readTime  []string       // a source's stamp for the batch in hand
	inPlace   int            // retries in place counted so far in the batch in hand
	latencies []time.Duration
	// The last read time a sink parsed, and its value: a source stamps a
	// whole batch alike, so most records repeat it.
	lastStamp string
	lastRead  time.Time
}

// newStageObs returns the stage's observer of the run, nil without one.
// impl is the stage's instance, asked whether it reports a lag.
func newStageObs(r *run, stage string, role stages.Role, impl any) *stageObs {
	if r.opts.Observer == nil {
		return nil
	}
	so := r.opts.Observer.Stage(r.p.Name, stage, role)
	if so == nil {
		return nil
	}
	o := &stageObs{obs: so}
	o.lagging, _ = impl.(stages.Lagging)
	return o
}

// begin marks the start of a batch.
func (o *stageObs) begin() {
	if o == nil {
		return
	}
	o.start, o.inPlace = time.Now(), 0
	o.readTime = nil
}

// stamp sets on h, a source's record, the time its batch was read:
// [stages.HeaderReadTime], the same value for the whole batch.
func (o *stageObs) stamp(h nats.Header) {
	if o == nil {
		return
	}
	if o.readTime == nil {
		o.readTime = []string{strconv.FormatInt(o.start.UnixNano(), 10)}
	}
	h[stages.HeaderReadTime] = o.readTime
}

// retried counts n attempts made again in place.
func (o *stageObs) retried(n int) {
	if o != nil {
		o.inPlace += n
	}
}

// write times a sink's Write of n messages, begun at start.
func (o *stageObs) write(start time.Time, n int) {
	if o != nil {
		o.obs.Written(time.Since(start), n)
	}
}

// now returns the time, or the zero time without an observer: what
// write's start is taken from.
func (o *stageObs) now() time.Time {
	if o == nil {
		return time.Time{}
	}
	return time.Now()
}

// sourceBatch reports a source's batch of reads, its end not counted.
func (o *stageObs) sourceBatch(batch []sourceRead) {
	if o == nil {
		return
	}
	n := 0
	for i := range batch {
		if batch[i].m != nil || batch[i].err != nil {
			n++
		}
	}
	o.obs.Batch(BatchFigures{Records: n, Duration: time.Since(o.start)})
	if o.lagging != nil {
		o.obs.Lag(o.lagging.Lag())
	}
}

// readTimeOf parses stamp, a Sluice-Read-Time, into o.lastRead, and
// reports whether it is one.
func (o *stageObs) readTimeOf(stamp string) bool {
	if stamp == o.lastStamp && stamp != "" {
		return true
	}
	ns, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return false
	}
	o.lastStamp, o.lastRead = stamp, time.Unix(0, ns)
	return true
}

// workerBatch reports the batch b of a transform or sink worker; for a
// sink, with the latency of every record it wrote.
func (o *stageObs) workerBatch(b *batch, sink bool) {
	if o == nil {
		return
	}
	d := time.Since(o.start)
	f := BatchFigures{Retries: o.inPlace, Duration: d}
	now := time.Now()
	o.latencies = o.latencies[:0]
	for i := range b.in {
		in := &b.in[i]
		if in.control || in.assign {
			continue
		}
		f.Records++
		if in.again {
			f.Retries++
		}
		if sink && in.act == actWritten {
			if v := in.msg.Headers()[stages.HeaderReadTime]; len(v) == 1 && o.readTimeOf(v[0]) {
				o.latencies = append(o.latencies, now.Sub(o.lastRead))
			}
		}
	}
	f.Latencies = o.latencies
	o.obs.Batch(f)
}
