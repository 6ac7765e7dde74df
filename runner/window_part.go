package runner

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// windowPart is the part of a worker in a pipeline with watermarks: it
// hears the watermarks of the inputs, stamps its own on the outputs and
// sends ticks of it; for a Windowed transform it also loads, advances and
// checkpoints the state of the partitions.
//
// A worker in a pipeline without watermarks has none: a nil *windowPart,
// whose methods do nothing.
type windowPart struct {
	marks       *marks
	windowed    stages.Windowed // nil unless the stage is a Windowed transform
	outSubjects []string        // every subject the stage publishes on, for ticks
	touched     map[int]bool    // partitions the batch in hand touched
	reload      map[int]bool    // partitions to load again from their checkpoint
	stopTimeout time.Duration   // how long a checkpoint may take once the run stops
	log         *slog.Logger

	intake  *intake                   // nil unless windowed
	copies  map[int]map[[16]byte]bool // by partition looked up in the batch in hand: the inputs found in the intake log
	lookups map[int]error             // by partition looked up in the batch in hand: the lookup's error
}

// newWindowPart returns the window part of worker idx of stage st, nil if
// pipeline p has no watermarks; windowed is the stage's Windowed
// transform, or nil.
func newWindowPart(r *run, st *pipeline.Stage, idx int, windowed stages.Windowed, log *slog.Logger) *windowPart {
	if !usesWatermarks(r.p) {
		return nil
	}
	channel := st.Name + "." + r.member + "." + strconv.Itoa(idx)
	return &windowPart{
		marks:       newMarks(channel, r.p.Settings.IdleTimeout),
		windowed:    windowed,
		outSubjects: outputSubjects(r.p, st),
		touched:     make(map[int]bool),
		reload:      make(map[int]bool),
		copies:      make(map[int]map[[16]byte]bool),
		lookups:     make(map[int]error),
		stopTimeout: r.opts.StopTimeout,
		log:         log,
	}
}

// reloads reports whether partition k's state is to be loaded again
// before its next message.
func (wp *windowPart) reloads(k int) bool {
	return wp != nil && wp.reload[k]
}

// load loads partition k's state from its checkpoint into a Windowed
// transform, and the watermark tracking stored with it. A failure leaves
// the partition to be loaded again before its next message.
func (wp *windowPart) load(ctx context.Context, k int, now time.Time) {
	if wp == nil || wp.windowed == nil {
		return
	}
	b, err := wp.windowed.Assign(ctx, k)
	if err != nil {
		wp.log.Error("partition state not loaded; trying again with the next message", "partition", k, "err", err)
		wp.reload[k] = true
		return
	}
	wp.marks.restore(k, b, now)
	if wp.intake != nil {
		// What batches not checkpointed logged did not happen.
		if err := wp.intake.voidAfter(ctx, k, wp.marks.part(k).Intake); err != nil {
			wp.log.Error("partition intake log not cleaned; trying again with the next message", "partition", k, "err", err)
			wp.reload[k] = true
			return
		}
	}
	delete(wp.reload, k)
}

// isCopy reports whether input f, message m, of the batch in hand is a
// copy of an input its partition took into the state before (see intake):
// for the first possible copy of a partition in the batch, it looks up
// every possible copy of the partition in the batch. A lookup that fails
// makes the input go back to the server (err).
func (wp *windowPart) isCopy(ctx context.Context, b *batch, f *inFlight, m *stages.Message) (bool, error) {
	if wp == nil || wp.intake == nil || !m.MaybeCopy() {
		return false, nil
	}
	ids := m.Header[stages.HeaderMsgID]
	if len(ids) != 1 {
		return false, nil
	}
	k := f.part
	d := wp.intake.digest(ids[0])
	if wp.intake.tookInBatch(k, d) {
		return true, nil
	}
	found, done := wp.copies[k]
	if !done {
		want := make(map[[16]byte]struct{})
		for i := range b.in {
			g := &b.in[i]
			if g.part != k || g.msg == nil {
				continue
			}
			h := g.msg.Headers()
			meta, err := g.msg.Metadata()
			again := err == nil && meta.NumDelivered > 1
			if gid := h[stages.HeaderMsgID]; len(gid) == 1 && (again || len(h[stages.HeaderRedelivered]) > 0) {
				want[wp.intake.digest(gid[0])] = struct{}{}
			}
		}
		asked := maps.Clone(want)
		err := wp.intake.lookup(ctx, k, want)
		found = make(map[[16]byte]bool, len(asked))
		for d := range asked {
			if _, missing := want[d]; !missing {
				found[d] = true
			}
		}
		wp.copies[k], wp.lookups[k] = found, err
	}
	if err := wp.lookups[k]; err != nil {
		return false, err
	}
	return found[d], nil
}

// took notes that input m of partition k went into the state.
func (wp *windowPart) took(k int, m *stages.Message) {
	if wp != nil && wp.intake != nil {
		wp.intake.take(k, m)
	}
}

// publishIntake publishes in pub the intake log's entries of the batch in
// hand.
func (wp *windowPart) publishIntake(pub *publishBatch) {
	if wp != nil && wp.intake != nil {
		wp.intake.publish(pub)
	}
}

// observe takes in the watermark of input m of partition k (end: the end
// marker of all input), gives m the partition's watermark before it, and
// returns the watermark a Windowed transform is to advance to, noMark if
// none.
func (wp *windowPart) observe(k int, m *stages.Message, end bool, now time.Time) int64 {
	if wp == nil {
		return noMark
	}
	return wp.observeMark(k, m, end, now)
}

func (wp *windowPart) observeMark(k int, m *stages.Message, end bool, now time.Time) int64 {
	before := wp.marks.current(k)
	m.Meta.Watermark = markTime(before)
	advance := int64(noMark)
	if after := wp.marks.observe(k, m.Header, end, now); after > before && wp.windowed != nil {
		advance = after
	}
	wp.touched[k] = true
	return advance
}

// stamp sets the worker's own watermark on an output's headers.
func (wp *windowPart) stamp(h nats.Header, now time.Time) {
	if wp != nil {
		wp.marks.stamp(h, now)
	}
}

// tick publishes in pub, if the worker's own watermark moved since it last
// stamped it, a tick of it on every subject the stage publishes on; idBase
// is the "p/s/" of the stage's message IDs.
func (wp *windowPart) tick(pub *publishBatch, idBase string, now time.Time) {
	if wp == nil || !wp.marks.due(now) {
		return
	}
	h := make(nats.Header, 3)
	wp.marks.stamp(h, now)
	mark := h.Get(stages.HeaderWatermark)
	for i, subject := range wp.outSubjects {
		id := idBase + "wm/" + strings.ReplaceAll(mark, ";", "/") + "/" + strconv.Itoa(i)
		pub.addOutput(tickMsg(subject, id, controlTick, mark))
	}
}

// checkpoint stores the state of a Windowed transform for the partitions
// the batch touched, once every publish of the batch in pub is stored and
// before the inputs are acknowledged. If a publish is not stored (the run
// stops) or the state cannot be stored, it has the partitions loaded again
// from their last checkpoint before their next message and returns an
// error: the batch is to go back to the server.
func (wp *windowPart) checkpoint(stop context.Context, pub *publishBatch) error {
	if wp == nil || wp.windowed == nil {
		return nil
	}
	clear(wp.copies)
	clear(wp.lookups)
	if wp.intake != nil {
		defer wp.intake.forgetBatch()
	}
	err := errNotPublished
	if pub.pending(nil) == 0 {
		snaps := make(map[int][]byte, len(wp.touched))
		for k := range wp.touched {
			if wp.intake != nil {
				if seq := wp.intake.stored(pub, k); seq > 0 {
					wp.marks.part(k).Intake = seq
				}
			}
			snaps[k] = wp.marks.snapshot(k)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(stop), wp.stopTimeout)
		err = wp.windowed.Checkpoint(ctx, snaps)
		cancel()
	}
	if err == nil {
		clear(wp.touched)
		return nil
	}
	if !errors.Is(err, errNotPublished) {
		wp.log.Error("state not stored: the batch goes back to the server", "err", err)
	}
	for k := range wp.touched {
		wp.reload[k] = true
	}
	clear(wp.touched)
	return err
}

// errNotPublished: an output of the batch was not stored.
var errNotPublished = errors.New("outputs not stored")
