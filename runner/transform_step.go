package runner

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// transformStep is the step of a transform stage: it runs the transform on
// each input as it comes and publishes its outputs, each with an ID
// derived from the input's lineage.
type transformStep struct {
	transform stages.Transform
	subject   string          // the stage's output subject
	routes    map[string]bool // the routes the stage may send outputs on, "" its default output
	keys      *outputKeys     // nil unless the stage sets event_time or key
	idBuf     []byte          // reused to build message IDs
	outs      []*stages.Message
	subjects  []string // the subject of each output of the input in hand
}

func newTransformStep(r *run, st *pipeline.Stage, t stages.Transform) (*transformStep, error) {
	keys, err := newOutputKeys(r.p, st)
	if err != nil {
		return nil, err
	}
	return &transformStep{
		transform: t,
		subject:   schema.Subject(r.p.Name, st.Name),
		routes:    outputRoutes(st),
		keys:      keys,
	}, nil
}

// process runs the transform on every input of w's batch in turn. Once
// stop is done it takes no further input: those not begun go back to the
// server, so that a stop waits for one record, not for a whole batch of
// slow ones.
func (s *transformStep) process(stop, ctx context.Context, w *worker, now time.Time) {
	b := &w.batch
	for i := range b.in {
		if stop.Err() != nil {
			b.giveBackFrom(i)
			break
		}
		f := &b.in[i]
		m, advance, ok := w.prepare(ctx, f, now)
		switch {
		case !ok:
		case f.control && advance != noMark:
			s.processOne(stop, ctx, w, f, m, false, advance)
		case f.control:
			// A tick or end marker: nothing to process.
			b.published(f, w.pub.len(), 0)
		default:
			s.processOneOnce(stop, ctx, w, f, m, advance)
		}
	}
	w.window.tick(&w.pub, w.idBase, now)
}

// processOneOnce processes input f, message m, unless it is a copy of one
// its partition took into a Windowed transform's state before: a copy is
// acknowledged without being taken (but still moves the watermark).
func (s *transformStep) processOneOnce(stop, ctx context.Context, w *worker, f *inFlight, m *stages.Message, advance int64) {
	copied, err := w.window.isCopy(ctx, &w.batch, f, m)
	switch {
	case err != nil:
		w.log.Warn("cannot tell whether a record delivered again was taken before: it goes back", "err", err, "stream", m.Meta.Stream, "seq", m.Meta.Sequence)
		w.batch.giveBack(f)
	case copied && advance != noMark:
		s.processOne(stop, ctx, w, f, m, false, advance)
	case copied:
		w.batch.copied(f)
	default:
		s.processOne(stop, ctx, w, f, m, true, advance)
	}
}

// processOne runs the transform on one input and publishes its outputs.
// A failure because the destination is down (an error marked
// stages.ErrOutage) holds the worker, which tries the input again in
// place until the destination is back (see outage). On a partitioned
// input another failure is retried in place, so that the records after
// it in its partition wait for it.
//
// With process false (a watermark tick or end marker) the transform does
// not see the message; with advance set, a Windowed transform then
// advances to that watermark, and its outputs count as the message's.
func (s *transformStep) processOne(stop, ctx context.Context, w *worker, f *inFlight, m *stages.Message, process bool, advance int64) {
	span := w.trace.begin(m)
	outs, err := s.transformOne(ctx, w, m, process, advance)
	attempts := 0
	for err != nil {
		if stages.IsOutage(err) {
			if !w.holdOn(stop, err) {
				break
			}
		} else if w.policy.retryInPlace(stop, m, err, attempts) {
			attempts++
		} else {
			break
		}
		outs, err = s.transformOne(ctx, w, m, process, advance)
	}
	w.endHold(!stages.IsOutage(err))
	w.trace.end(span, outs, err)
	if err != nil {
		w.fail(ctx, f, m, err, attempts)
		return
	}
	if w.chain != nil {
		s.toChain(ctx, w, f, m, outs, attempts)
		return
	}
	w.batch.published(f, w.pub.len(), len(outs))
	if process {
		w.window.took(f.part, m)
	}
	again := m.MaybeCopy()
	for i, o := range outs {
		data, _ := o.Payload()
		o.Header[stages.HeaderMsgID] = []string{s.outputID(w.idBase, f.lin, i)}
		if again {
			// Published before, maybe, by an earlier delivery: a sink that
			// deduplicates must look it up (see stages.HeaderRedelivered).
			o.Header[stages.HeaderRedelivered] = redelivered
		}
		w.pub.addOutput(&nats.Msg{Subject: s.subjects[i], Data: data, Header: o.Header})
	}
}

// toChain hands the outputs of input f, message m, to the chain fused
// after the stage (see worker.chain), with the IDs they would be published
// under. A failure of the chain that is not a stop fails the input as a
// whole.
func (s *transformStep) toChain(ctx context.Context, w *worker, f *inFlight, m *stages.Message, outs []*stages.Message, attempts int) {
	again := m.MaybeCopy()
	for i, o := range outs {
		o.Header[stages.HeaderMsgID] = []string{s.outputID(w.idBase, f.lin, i)}
		if again {
			o.Header[stages.HeaderRedelivered] = redelivered
		}
	}
	first := w.pub.len()
	k, err := w.chain.takeInput(ctx, outs, &w.pub)
	switch {
	case err != nil && ctx.Err() != nil:
		w.batch.giveBack(f)
	case err != nil:
		w.fail(ctx, f, m, err, attempts)
	default:
		w.batch.chained(f, first, w.pub.len()-first, len(outs), k)
	}
}

// transformOne runs the transform on m, and encodes and keys its outputs
// (s.outs, their subjects in s.subjects).
func (s *transformStep) transformOne(ctx context.Context, w *worker, m *stages.Message, process bool, advance int64) ([]*stages.Message, error) {
	outs, err := s.outs[:0], error(nil)
	if process {
		outs, err = s.safeProcess(ctx, w.stage.Name, m)
	}
	if err == nil && advance != noMark {
		outs, err = s.safeAdvance(ctx, w.window.windowed, w.stage.Name, m.Meta.Partition, markTime(advance), outs)
	}
	s.outs = outs[:0]
	now := time.Now()
	s.subjects = s.subjects[:0]
	if err == nil {
		// Encode every output and find its subject before publishing any,
		// so that a record that cannot be encoded or keyed fails its input
		// as a whole.
		for _, o := range outs {
			if w.chain != nil {
				// Fused, the chain's stages take the record as it is,
				// with the types a stream would give them.
				if err = asDecoded(o); err != nil {
					break
				}
			} else {
				var data []byte
				if data, err = o.Payload(); err != nil {
					break
				}
				if err = w.run.checkSize(data); err != nil {
					break
				}
			}
			if !s.routes[o.Route] {
				err = stages.Permanent(fmt.Errorf("output on route %q, which %s %q does not declare", o.Route, w.stage.Role, w.stage.Type))
				break
			}
			if o.Header == nil {
				o.Header = make(nats.Header, 1)
			}
			if o != m {
				inheritHeaders(o, m)
			}
			w.window.stamp(o.Header, now)
			subject := s.subject
			if o.Route != "" {
				subject = s.subject + "." + o.Route
			}
			if s.keys != nil {
				var part string
				if part, err = s.keys.apply(o); err != nil {
					break
				}
				if part != "" {
					subject = part
				}
			}
			s.subjects = append(s.subjects, subject)
		}
	}
	return outs, err
}

// safeProcess runs the transform, turning a panic into an error.
func (s *transformStep) safeProcess(ctx context.Context, stage string, m *stages.Message) (outs []*stages.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, err = nil, fmt.Errorf("stage %q panicked: %v", stage, r)
		}
	}()
	return s.transform.Process(ctx, m, s.outs[:0])
}

// safeAdvance advances partition k of windowed to mark, turning a panic
// into an error.
func (s *transformStep) safeAdvance(ctx context.Context, windowed stages.Windowed, stage string, k int, mark time.Time, out []*stages.Message) (outs []*stages.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, err = nil, fmt.Errorf("stage %q panicked: %v", stage, r)
		}
	}()
	return windowed.Advance(ctx, k, mark, out)
}

// inheritHeaders gives output o of input in the event time and key of in,
// unless the stage set its own: a transform that builds new messages keeps
// its records' event time.
func inheritHeaders(o, in *stages.Message) {
	for _, name := range inherited {
		if v, ok := in.Header[name]; ok {
			if _, set := o.Header[name]; !set {
				o.Header[name] = v
			}
		}
	}
}

// inherited are the headers an output inherits from its input.
var inherited = []string{stages.HeaderEventTime, stages.HeaderKey, stages.HeaderReadTime}

// outputRoutes returns the routes stage st may send outputs on: those its
// type declares, or else only its default output "".
func outputRoutes(st *pipeline.Stage) map[string]bool {
	if st.Spec == nil || st.Spec.Routes == nil {
		return map[string]bool{"": true}
	}
	routes := make(map[string]bool)
	for _, r := range st.Spec.Routes(st.Params) {
		routes[r] = true
	}
	return routes
}

// redelivered is the value of stages.HeaderRedelivered.
var redelivered = []string{"1"}

// outputID returns the Nats-Msg-Id of output i of an input of lineage
// lin, <idBase><lin>.<i>, built in one allocation.
func (s *transformStep) outputID(idBase, lin string, i int) string {
	return outputID(&s.idBuf, idBase, lin, i)
}

// outputID returns <idBase><lin>.<i>, built in *buf (which it keeps for
// the next call) and copied out in one allocation.
func outputID(buf *[]byte, idBase, lin string, i int) string {
	b := append((*buf)[:0], idBase...)
	b = append(b, lin...)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(i), 10)
	*buf = b
	return string(b)
}
