package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// sourceRead is one result of Source.Read, or (m and err nil) the end of
// the source. cp, when set, is the source's checkpoint after it.
type sourceRead struct {
	m   *stages.Message
	err error
	cp  []byte
}

// checkpointEvery is how many records the reader reads between two
// checkpoints while the publisher is behind; when the publisher has caught
// up, the reader takes a checkpoint after every record.
const checkpointEvery = 256

// checkpointInterval is the least time between two checkpoints stored in
// the state bucket, except the last one when the source ends.
const checkpointInterval = 100 * time.Millisecond

// sourceLoop runs one source stage: a reader goroutine calls Read while
// this loop publishes what was read in batches and waits for the acks, so
// reading and publishing overlap.
type sourceLoop struct {
	run      *run
	stage    *pipeline.Stage
	src      stages.Source
	stats    *stageStats
	log      *slog.Logger
	subject  string
	keys     *outputKeys  // nil unless the stage sets event_time or key
	subjects []string     // every subject it publishes on, for watermark ticks
	marks    *sourceMarks // nil unless the pipeline uses watermarks
	idBase   string       // "p/s/r<run>/", and the attempt when a source that cannot resume reads anew
	keyBase  string       // "p/s/r<run>/id/": what the ID of a record the source identified begins with
	origin   string       // "s/r<run>/"
	pub      publishBatch
	seq      uint64 // records read so far in this run
	dead     uint64 // of them, dead-lettered
	dropped  uint64 // of them, dropped
	upto     uint64 // records the stored checkpoint lets it publish (Checkpoint.Upto)
	again    uint64 // records up to this one may be copies: published before a resume
	acks     []pendingAck
	obs      *stageObs   // nil without an Observer
	trace    *stageTrace // nil with tracing off
	chain    *chain      // the stages fused after the source, nil if none

	resumable stages.Resumable  // nil when the source cannot resume
	done      bool              // a resumed run whose source had ended
	cp        schema.Checkpoint // the latest checkpoint of published records
	cps       []pendingCheckpoint
	unsaved   bool      // cp is not stored yet
	saved     time.Time // when a checkpoint was last stored
}

func newSourceLoop(r *run, st *pipeline.Stage, src stages.Source) (*sourceLoop, error) {
	js, err := r.newPublisher()
	if err != nil {
		return nil, err
	}
	runID := "r" + strconv.FormatUint(r.id, 10) + "/"
	l := &sourceLoop{
		run:     r,
		stage:   st,
		src:     src,
		stats:   r.stats[st.Name],
		log:     r.log.With("stage", st.Name),
		subject: schema.Subject(r.p.Name, st.Name),
		idBase:  r.p.Name + "/" + st.Name + "/" + runID,
		keyBase: r.p.Name + "/" + st.Name + "/" + runID + "id/",
		origin:  st.Name + "/" + runID,
	}
	if l.keys, err = newOutputKeys(r.p, st); err != nil {
		return nil, err
	}
	l.subjects = outputSubjects(r.p, st)
	l.trace = newStageTrace(r, st)
	if usesWatermarks(r.p) {
		l.marks = newSourceMarks(st.Name, r.p.Settings)
	}
	// Partitioned outputs keep their order, and a watermark tick must not
	// overtake the records before it.
	l.pub.js, l.pub.fastOK, l.pub.ordered = js, true, st.Partitions > 0 || l.marks != nil
	l.resumable, _ = src.(stages.Resumable)
	l.obs = newStageObs(r, st.Name, st.Role, src)
	if pr, ok := src.(stages.ProgressReporter); ok {
		l.stats.progress.Store(&pr)
	}
	l.cp.Run = r.id
	return l, nil
}

// sendTicks publishes a watermark tick to every subject the source
// publishes on, if one is due, and waits until JetStream has them.
func (l *sourceLoop) sendTicks(ctx context.Context) error {
	mark, due := l.marks.tick(time.Now())
	if !due {
		return nil
	}
	l.pub.reset()
	for i, subject := range l.subjects {
		id := l.idBase + "wm/" + strings.ReplaceAll(mark, ";", "/") + "/" + strconv.Itoa(i)
		l.pub.addOutput(tickMsg(subject, id, controlTick, mark))
	}
	if l.pub.wait(ctx) > 0 && ctx.Err() == nil {
		l.log.Warn("watermark tick not stored; the next one carries it")
	}
	return nil
}

// recordEventTime returns the event time in h, or now for a record
// without one.
func recordEventTime(h nats.Header) time.Time {
	if v := h.Get(stages.HeaderEventTime); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	return time.Now()
}

// pendingAck is a record of a batch whose source waits to hear that
// JetStream has it (see stages.Message.OnAck).
type pendingAck struct {
	m   *stages.Message
	idx int   // its index in the publish batch
	err error // set when the record was dead-lettered or dropped
}

// pendingCheckpoint is a checkpoint taken within a batch being published:
// it holds once the first published messages of the batch are
// acknowledged.
type pendingCheckpoint struct {
	published int
	cp        schema.Checkpoint
	sinkPos   int // with a fused chain: the records of the sink's batch it covers
}

// resume moves the source of a resumed run to its stored checkpoint.
func (l *sourceLoop) resume(ctx context.Context) error {
	if l.resumable == nil {
		// It reads anew (stdin): new records must not take the IDs of
		// those the interrupted process published, or the streams would
		// drop them as duplicates.
		attempt := "r" + strconv.FormatUint(l.run.id, 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/"
		l.idBase = l.run.p.Name + "/" + l.stage.Name + "/" + attempt
		l.origin = l.stage.Name + "/" + attempt
	}
	cp, found, err := schema.GetJSON[schema.Checkpoint](ctx, l.run.kv, schema.CheckpointKey(l.run.p.Name, l.stage.Name))
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	if !found || cp.Run != l.run.id {
		// Killed before its first checkpoint: the source starts over, and
		// a resumable one publishes again what the streams then drop.
		return nil
	}
	l.cp, l.seq, l.done = cp, cp.Records, cp.Done
	l.dead, l.dropped = cp.Dead, cp.Dropped
	if !l.run.replay {
		// The counts are the whole run's: what was checkpointed before,
		// then what this process publishes. A run resumed for its
		// replayed dead letters counts these alone.
		l.count(cp.Records, cp.Dead, cp.Dropped)
		if l.chain != nil {
			l.chain.restore(cp.Fused)
		}
	}
	if l.resumable != nil {
		l.upto, l.again = cp.Upto, cp.Upto
	}
	switch {
	case cp.Done:
		l.log.Info("source had ended before the interruption", "records", cp.Records)
	case l.resumable != nil && cp.Position == nil && cp.Records == 0:
		l.log.Info("source starts over: it had not checkpointed a record", "may_repeat", cp.Upto)
	case l.resumable != nil && cp.Position != nil:
		if err := l.resumable.Resume(cp.Position); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		l.log.Info("source resumes", "records", cp.Records, "checkpoint", string(cp.Position))
	default:
		l.log.Warn("source cannot resume a position: it reads anew", "records", cp.Records)
	}
	return nil
}

// save stores the latest checkpoint, unless one was stored less than
// checkpointInterval ago and force is false.
func (l *sourceLoop) save(ctx context.Context, force bool) error {
	if !force && time.Since(l.saved) < checkpointInterval {
		return nil
	}
	l.cp.Upto = l.upto
	if err := schema.PutJSON(ctx, l.run.kv, schema.CheckpointKey(l.run.p.Name, l.stage.Name), l.cp); err != nil {
		return fmt.Errorf("stage %q: store checkpoint: %w", l.stage.Name, err)
	}
	l.saved, l.unsaved = time.Now(), false
	return nil
}

// loop reads until the source ends (nil), ctx ends (ctx.Err()) or the
// source fails. Everything read before it returns has been published and
// acknowledged, unless ctx ended first.
func (l *sourceLoop) loop(ctx context.Context) (err error) {
	if l.run.resumed || l.run.joined {
		// A run started elsewhere (a worker taking a deployed pipeline's
		// source over) continues from the checkpoint, if there is one.
		if err := l.resume(ctx); err != nil {
			return fmt.Errorf("stage %q: %w", l.stage.Name, err)
		}
	}
	if l.done {
		return nil
	}
	ch := make(chan sourceRead, batchSize)
	readCtx, stopReading := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopReading()
		wg.Wait()
		for r := range ch { // read but not published: the run stops
			if r.m != nil {
				r.m.Ack(fmt.Errorf("stage %q: not stored: the run stops", l.stage.Name))
			}
		}
		if l.unsaved {
			// Stopped: store where the source stands, so that a resumed
			// run reads as little again as possible.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.run.opts.StopTimeout)
			defer cancel()
			if serr := l.save(sctx, true); serr != nil {
				if err == nil && l.cp.Done {
					// The end of the source must be known for the run
					// to finish.
					err = serr
				} else {
					l.log.Warn("checkpoint not stored", "err", serr)
				}
			}
		}
	}()
	wg.Go(func() {
		defer close(ch)
		for n := 1; ; n++ {
			m, err := l.src.Read(readCtx)
			if readCtx.Err() != nil {
				return
			}
			r := sourceRead{m: m, err: err}
			if errors.Is(err, io.EOF) {
				r = sourceRead{}
			}
			if l.resumable != nil && (r.m == nil || n%checkpointEvery == 0 || len(ch) == 0) {
				if r.cp, err = l.resumable.Checkpoint(); err != nil {
					r.err = fmt.Errorf("checkpoint: %w", err)
				}
			}
			select {
			case ch <- r:
			case <-readCtx.Done():
				return
			}
			if r.m == nil || (r.err != nil && !stages.IsPermanent(r.err)) {
				return
			}
		}
	})

	batch := make([]sourceRead, 0, batchSize)
	var tick <-chan time.Time
	if l.marks != nil {
		t := time.NewTicker(watermarkTick / 4)
		defer t.Stop()
		tick = t.C
	}
	for {
		batch = batch[:0]
		var r sourceRead
		var ok bool
		select {
		case r, ok = <-ch:
		case <-tick:
			if err := l.sendTicks(ctx); err != nil {
				return err
			}
			continue
		}
		if !ok {
			return ctx.Err()
		}
		batch = append(batch, r)
	fill:
		for len(batch) < batchSize {
			select {
			case r, ok := <-ch:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		l.obs.begin()
		ended, err := l.publish(ctx, batch)
		if err != nil {
			return err
		}
		l.obs.sourceBatch(batch)
		if err := l.save(ctx, ended); err != nil {
			// The next batch tries again; a resumed run reads a little
			// more again meanwhile.
			l.log.Warn("checkpoint not stored", "err", err)
		}
	}
}

// reserveAhead is how many records past a batch a source's checkpoint
// lets it publish (Checkpoint.Upto), so that it is stored once every so
// many records, not with each batch.
const reserveAhead = 16 * batchSize

// reserve makes sure that the stored checkpoint lets the source publish n
// more records: a resumed run must know which of the records it publishes
// again may be copies. A resumable source stores, before it publishes past
// Upto, a checkpoint with a higher one, trying again until it can or ctx
// ends.
func (l *sourceLoop) reserve(ctx context.Context, n int) error {
	if l.resumable == nil || l.seq+uint64(n) <= l.upto {
		return nil
	}
	l.upto = l.seq + uint64(n) + reserveAhead
	err := retry.Do(ctx, retry.Backoff{Min: 10 * time.Millisecond, Max: time.Second}, 0,
		func(error) bool { return true },
		func(err error) { l.log.Warn("checkpoint not stored, trying again", "err", err) },
		func() error { return l.save(ctx, true) })
	if err != nil {
		return fmt.Errorf("stage %q: %w", l.stage.Name, err)
	}
	return nil
}

// publish publishes a batch of reads and waits until JetStream has them
// all, retrying while the first stage's buffer is full. It moves the
// checkpoint to the latest one whose records, and all before them, are
// acknowledged, even if ctx ends the wait. It reports whether the batch
// ends the source.
func (l *sourceLoop) publish(ctx context.Context, batch []sourceRead) (ended bool, err error) {
	l.pub.reset()
	l.cps = l.cps[:0]
	l.acks = l.acks[:0]
	chainDone := false // the chain wrote and published the batch
	if l.chain != nil {
		l.chain.begin()
	}
	defer func() {
		// Tell the sources that wait: stored, refused, or not stored
		// because the run stops.
		for _, a := range l.acks {
			switch {
			case a.err != nil:
				a.m.Ack(a.err)
			case a.idx < 0 && chainDone: // went through the fused chain
				a.m.Ack(nil)
			case a.idx >= 0 && l.pub.ok(a.idx):
				a.m.Ack(nil)
			default:
				a.m.Ack(fmt.Errorf("stage %q: not stored: %w", l.stage.Name, cmp.Or(err, context.Canceled)))
			}
		}
	}()
	if err := l.reserve(ctx, len(batch)); err != nil {
		return false, err
	}
	seq0, dead0, dropped0 := l.seq, l.dead, l.dropped
	for _, r := range batch {
		if r.err != nil && !stages.IsPermanent(r.err) {
			if r.m != nil {
				l.acks = append(l.acks, pendingAck{m: r.m, err: r.err})
			}
			return false, fmt.Errorf("stage %q: read: %w", l.stage.Name, r.err)
		}
		if r.m == nil && r.err == nil {
			ended = true
			l.cps = append(l.cps, pendingCheckpoint{published: l.pub.len(), cp: l.checkpoint(r.cp, true), sinkPos: l.chain.sinkPos()})
			break
		}
		l.seq++
		// The record's checkpoint, if it has one, is filled in with the
		// counts once the record is decided on.
		cpAt := -1
		if r.cp != nil || l.resumable == nil {
			cpAt = len(l.cps)
			l.cps = append(l.cps, pendingCheckpoint{published: l.pub.len() + 1})
		}
		decided := func() {
			if cpAt >= 0 {
				l.cps[cpAt].cp = l.checkpoint(r.cp, false)
				if l.chain != nil {
					l.cps[cpAt].published, l.cps[cpAt].sinkPos = l.pub.len(), l.chain.sinkPos()
				}
			}
		}
		n := strconv.FormatUint(l.seq, 10)
		var data []byte
		var err error
		subject := l.subject
		if r.m != nil && l.chain != nil && r.err == nil && r.m.NeedsEncoding() {
			// Fused, a record the source gave as a value is not encoded:
			// the chain takes it as it is, with JSON's types. One it gave
			// as bytes is held to the size a stream takes, as it is
			// without fusion.
			err = asDecoded(r.m)
		} else if r.m != nil {
			if data, err = r.m.Payload(); err == nil {
				err = l.run.checkSize(data)
			}
			if err == nil && r.err == nil && l.keys != nil {
				if r.m.Header == nil {
					r.m.Header = make(nats.Header, 3)
				}
				var part string
				if part, err = l.keys.apply(r.m); part != "" {
					subject = part
				}
			}
		}
		if r.err != nil || err != nil {
			reason := r.err
			if reason == nil {
				reason = err
			}
			if r.m != nil {
				l.acks = append(l.acks, pendingAck{m: r.m, err: fmt.Errorf("%w: %w", stages.ErrDeadLettered, reason)})
			}
			if l.stage.OnError == pipeline.OnErrorDrop {
				l.log.Warn("record dropped", "err", reason, "record", l.seq)
				l.dropped++
				if cpAt >= 0 {
					l.cps[cpAt].published--
				}
				decided()
				continue
			}
			var hdr nats.Header
			if r.m != nil {
				hdr = r.m.Header
			}
			dl := deadLetter(l.run.p.Name, l.stage.Name, l.run.id, l.idBase+n+"/dlq", "", data, hdr, reason, 0, l.run.nc.MaxPayload())
			l.run.keepWhole(ctx, dl, data)
			l.pub.add(dl)
			l.dead++
			decided()
			continue
		}
		h := r.m.Header
		if h == nil {
			h = make(nats.Header, 2)
		}
		if ids := h[stages.HeaderMsgID]; len(ids) == 1 && ids[0] != "" {
			h[stages.HeaderMsgID] = []string{l.keyBase + ids[0]}
			if l.chain != nil && !l.chain.ids.add(ids[0], time.Now()) {
				// Read again within the dedup window: taken once, as
				// the stream would.
				l.acks = append(l.acks, pendingAck{m: r.m, idx: -1})
				decided()
				continue
			}
		} else {
			h[stages.HeaderMsgID] = []string{l.idBase + n}
		}
		h[stages.HeaderOrigin] = []string{l.origin + n}
		l.obs.stamp(h)
		if l.seq <= l.again {
			h[stages.HeaderRedelivered] = redelivered
		}
		if l.marks != nil {
			l.marks.record(h, recordEventTime(h), time.Now())
		}
		l.trace.source(h, subject)
		if l.chain != nil {
			r.m.Header = h
			if err := l.chain.take(ctx, r.m, &l.pub); err != nil {
				return false, err
			}
			l.acks = append(l.acks, pendingAck{m: r.m, idx: -1})
			decided()
			continue
		}
		idx := l.pub.addOutput(&nats.Msg{Subject: subject, Data: data, Header: h})
		l.acks = append(l.acks, pendingAck{m: r.m, idx: idx})
		decided()
	}
	if l.chain != nil && !l.chain.flush(ctx, ctx, &l.pub) {
		// Not written: nothing of the batch counts, a resumed run reads
		// it again.
		l.pub.wait(ctx)
		return false, cmp.Or(ctx.Err(), l.run.failure(), errors.New("the fused sink gave up"))
	}
	// A source cannot nak: it retries until JetStream has the batch or the
	// run is stopped.
	// Stopped while the batch's publishes are on their way, most are
	// stored already: their answers are waited for a moment more, so
	// that the checkpoint and the counts take them.
	wctx, cancel := graceAfter(ctx, settlePoll)
	left := l.pub.wait(wctx)
	cancel()
	acked := l.pub.len()
	if left > 0 {
		acked = l.pub.ackedPrefix()
	}
	moved, sinkPos := false, 0 // the checkpoint moved, and what of the sink's batch it covers
	for _, pc := range l.cps {
		if pc.published <= acked {
			l.cp, l.unsaved = pc.cp, true
			moved, sinkPos = true, pc.sinkPos
			if l.chain != nil {
				l.cp.Fused = l.chain.counts(pc.sinkPos)
			}
		}
	}
	if left > 0 {
		// Stopped with part of the batch stored: what the checkpoint now
		// covers is counted here, as a resumed run counts it.
		if moved {
			l.count(l.cp.Records-seq0, l.cp.Dead-dead0, l.cp.Dropped-dropped0)
			if l.chain != nil {
				l.chain.commitUpTo(sinkPos)
			}
		}
		return false, ctx.Err()
	}
	if l.chain != nil {
		chainDone = true
		l.chain.commitUpTo(l.chain.sinkPos())
		l.chain.observe()
	}
	l.count(l.seq-seq0, l.dead-dead0, l.dropped-dropped0)
	return ended, nil
}

// graceAfter returns a context that ends d after ctx ends (or when its
// cancel function is called).
func graceAfter(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	g, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-g.Done():
		}
	})
	return g, func() {
		stop()
		cancel()
	}
}

// checkpoint returns the checkpoint of the records read so far, at
// position pos.
func (l *sourceLoop) checkpoint(pos []byte, done bool) schema.Checkpoint {
	return schema.Checkpoint{Run: l.run.id, Records: l.seq, Position: pos, Done: done, Dead: l.dead, Dropped: l.dropped}
}

// count adds to the source's counts records read, of which dead were
// dead-lettered and dropped dropped, the others published: in = out +
// dead letters + dropped.
func (l *sourceLoop) count(read, dead, dropped uint64) {
	l.stats.in.Add(read)
	l.stats.out.Add(read - dead - dropped)
	l.stats.dead.Add(dead)
	l.stats.dropped.Add(dropped)
}
