package runner

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// Watermarks travel in band, in the Sluice-Watermark header of the
// messages themselves, so that a watermark can never overtake the records
// it speaks for: each source and each worker is a channel that stamps
// what it publishes with its own watermark, and a stage's watermark for a
// partition is the least of the watermarks of the channels it hears on
// it, leaving out channels gone idle. A source's watermark is the latest
// event time it has read minus max_out_of_orderness; a worker's is the
// least watermark of its inputs. When a channel has nothing to publish
// for a while, it sends a tick: a message without a record that only
// carries the watermark, to every subject it publishes on.

// noMark is the watermark of a channel that knows none yet.
const noMark = math.MinInt64

// watermarkTick is how often a source or worker whose watermark moved
// without a record to carry it sends a tick.
const watermarkTick = time.Second

// Values of the Sluice-Control header.
const (
	controlTick = "watermark"
	controlEnd  = "end"
)

// usesWatermarks reports whether p has a stage that acts on watermarks:
// only then do its sources and workers stamp them.
func usesWatermarks(p *pipeline.Pipeline) bool {
	for _, s := range p.Stages {
		if s.Spec != nil && s.Spec.Watermarks {
			return true
		}
	}
	return false
}

// formatMark returns the Sluice-Watermark header of channel at mark.
func formatMark(channel string, mark int64, idle bool) string {
	s := channel + "=" + strconv.FormatInt(mark, 10)
	if idle {
		s += ";idle"
	}
	return s
}

// parseMark reads a Sluice-Watermark header.
func parseMark(v string) (channel string, mark int64, idle, ok bool) {
	v, idle = strings.CutSuffix(v, ";idle")
	channel, n, found := strings.Cut(v, "=")
	if !found || channel == "" {
		return "", 0, false, false
	}
	mark, err := strconv.ParseInt(n, 10, 64)
	return channel, mark, idle, err == nil
}

// markTime returns mark as a time, zero for noMark.
func markTime(mark int64) time.Time {
	if mark == noMark {
		return time.Time{}
	}
	return time.UnixMilli(mark)
}

// channelMark is what a stage knows of one channel on one partition.
type channelMark struct {
	Mark int64     `json:"mark"`
	Idle bool      `json:"idle,omitempty"`
	seen time.Time // when it was last heard from
}

// partMarks is a stage's watermark tracking for one partition of its
// input (-1 for an input that is not partitioned): what it is
// checkpointed as, with a Windowed transform's state.
type partMarks struct {
	Channels map[string]*channelMark `json:"channels"`
	Current  int64                   `json:"current"` // never goes back
	// Intake is the stream sequence of the partition's last entry in the
	// intake log of a Windowed stage, 0 if none (see intake).
	Intake uint64 `json:"intake,omitempty"`
}

// marks tracks the watermarks a worker hears, by partition, and its own.
type marks struct {
	channel   string // the worker's own channel
	idleAfter time.Duration
	parts     map[int]*partMarks
	stamped   int64 // the own watermark last published
	stampIdle bool
}

func newMarks(channel string, idleAfter time.Duration) *marks {
	return &marks{channel: channel, idleAfter: idleAfter, parts: make(map[int]*partMarks), stamped: noMark}
}

func (w *marks) part(k int) *partMarks {
	p := w.parts[k]
	if p == nil {
		p = &partMarks{Channels: make(map[string]*channelMark), Current: noMark}
		w.parts[k] = p
	}
	return p
}

// current returns the watermark of partition k.
func (w *marks) current(k int) int64 { return w.part(k).Current }

// observe takes in the watermark header h of a message of partition k,
// or the end of all input, and returns the partition's watermark after.
func (w *marks) observe(k int, h nats.Header, end bool, now time.Time) int64 {
	p := w.part(k)
	if end {
		p.Current = stages.EndOfTime.UnixMilli()
		return p.Current
	}
	if v := h.Get(stages.HeaderWatermark); v != "" {
		if ch, mark, idle, ok := parseMark(v); ok {
			c := p.Channels[ch]
			if c == nil {
				c = &channelMark{Mark: noMark}
				p.Channels[ch] = c
			}
			c.Mark, c.Idle, c.seen = max(c.Mark, mark), idle, now
		}
	}
	least, active := int64(math.MaxInt64), false
	for _, c := range p.Channels {
		if c.Idle || now.Sub(c.seen) > w.idleAfter {
			continue
		}
		least, active = min(least, c.Mark), true
	}
	if active && least > p.Current {
		p.Current = least
	}
	return p.Current
}

// own returns the worker's own watermark, the least of its partitions'
// that are not idle, and whether all are idle.
func (w *marks) own(now time.Time) (int64, bool) {
	least, active := int64(math.MaxInt64), false
	all := int64(math.MaxInt64)
	for _, p := range w.parts {
		all = min(all, p.Current)
		for _, c := range p.Channels {
			if !c.Idle && now.Sub(c.seen) <= w.idleAfter {
				least, active = min(least, p.Current), true
				break
			}
		}
	}
	switch {
	case active:
		return least, false
	case len(w.parts) == 0:
		return noMark, true
	}
	return all, true
}

// stamp sets the worker's own watermark on an output's headers.
func (w *marks) stamp(h nats.Header, now time.Time) {
	mark, idle := w.own(now)
	if mark == noMark {
		return
	}
	h[stages.HeaderWatermark] = []string{formatMark(w.channel, mark, idle)}
	w.stamped, w.stampIdle = mark, idle
}

// due reports whether the worker's own watermark moved since it last
// stamped it, so that a tick should carry it on.
func (w *marks) due(now time.Time) bool {
	mark, idle := w.own(now)
	return mark != noMark && (mark != w.stamped || idle != w.stampIdle)
}

// snapshot returns partition k's tracking as checkpointed.
func (w *marks) snapshot(k int) []byte {
	b, _ := json.Marshal(w.part(k))
	return b
}

// restore replaces partition k's tracking with a checkpointed one (none
// for a partition never checkpointed). Channels count as heard now.
func (w *marks) restore(k int, b []byte, now time.Time) {
	p := &partMarks{Channels: make(map[string]*channelMark), Current: noMark}
	if len(b) > 0 {
		_ = json.Unmarshal(b, p)
		if p.Channels == nil {
			p.Channels = make(map[string]*channelMark)
		}
	}
	for _, c := range p.Channels {
		c.seen = now
	}
	w.parts[k] = p
}

// sourceMarks is a source's watermark: the latest event time it read,
// minus max_out_of_orderness.
type sourceMarks struct {
	channel    string
	lag        time.Duration
	idleAfter  time.Duration
	latest     int64 // latest event time read, Unix milliseconds
	read       time.Time
	ticked     time.Time
	tickedIdle bool
}

func newSourceMarks(channel string, set pipeline.Settings) *sourceMarks {
	return &sourceMarks{channel: channel, lag: set.MaxOutOfOrderness, idleAfter: set.IdleTimeout, latest: noMark}
}

// record takes in the event time of a record read now and stamps it.
func (s *sourceMarks) record(h nats.Header, eventTime time.Time, now time.Time) {
	s.latest, s.read = max(s.latest, eventTime.UnixMilli()), now
	s.stamp(h, now)
}

func (s *sourceMarks) mark() int64 {
	if s.latest == noMark {
		return noMark
	}
	return s.latest - s.lag.Milliseconds()
}

func (s *sourceMarks) stamp(h nats.Header, now time.Time) {
	mark := s.mark()
	if mark == noMark {
		return
	}
	idle := now.Sub(s.read) > s.idleAfter
	h[stages.HeaderWatermark] = []string{formatMark(s.channel, mark, idle)}
}

// tick returns the header of a tick if one is due now: every tick
// interval while the source has a watermark, so that partitions no record
// went to hear it too, and once when it goes idle (then no more until it
// reads again).
func (s *sourceMarks) tick(now time.Time) (string, bool) {
	mark := s.mark()
	if mark == noMark || now.Sub(s.ticked) < watermarkTick {
		return "", false
	}
	idle := now.Sub(s.read) > s.idleAfter
	if idle && s.tickedIdle {
		return "", false
	}
	s.ticked, s.tickedIdle = now, idle
	return formatMark(s.channel, mark, idle), true
}

// tickMsg returns a watermark tick or end marker for subject with the
// given message ID.
func tickMsg(subject, id, control, mark string) *nats.Msg {
	return &nats.Msg{Subject: subject, Header: nats.Header{
		stages.HeaderMsgID:     {id},
		stages.HeaderControl:   {control},
		stages.HeaderWatermark: {mark},
	}}
}
