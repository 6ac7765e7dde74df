package window

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// Window types and what to do with late records.
const (
	windowTumbling = "tumbling"
	windowSliding  = "sliding"
	windowSession  = "session"

	lateDrop       = "drop"
	lateDeadLetter = "dead_letter"
	lateSide       = "side"

	// windowLateRoute is the route late records go on with late: side.
	windowLateRoute = "late"
)

func windowSpec() stages.Spec {
	return stages.Spec{
		Name:    "window",
		Summary: "Aggregate records by key over event-time windows, emitted when the watermark passes",
		Doc: `Groups the records of each key (the key expression) into windows of ` +
			`event time and computes the aggregates for each: tumbling windows of ` +
			`size, one after another from the Unix epoch; sliding windows of size ` +
			`every slide; or sessions that close after gap without a record of the key. ` +
			`The stage must read a stage with key and partitions (the key of the ` +
			`partitions need not be this key, but all records of a key must be in ` +
			`one partition: use the same expression). A record's event time is its ` +
			`Sluice-Event-Time (set with event_time on a stage before), or the time ` +
			`its stream stored it.

When the watermark passes the end of a window, the window emits one record per ` +
			`key: {"key": KEY, "window_start": RFC3339, "window_end": RFC3339, and ` +
			`one field per aggregate}. The watermark is the least, over the sources, of ` +
			`the latest event time read minus settings.max_out_of_orderness (sources ` +
			`quiet for settings.idle_timeout are left out); when every source of a run ` +
			`has ended, every open window is emitted before the run finishes.

A record later than the watermark still counts while its window's end plus ` +
			`allowed_lateness is after the watermark: a window already emitted then ` +
			`emits again with the new aggregates and "update": N. A record later than ` +
			`that goes where late says: drop (counted as filtered), dead_letter, or ` +
			`side, the route window.late (read it with from: STAGE.late). In the run ` +
			`summary, a window's out counts the window records it emitted, and ` +
			`filtered the records that emitted nothing at once: those that went into ` +
			`open windows, and late ones dropped.

Aggregates, one output field each: count, count(EXPR) (records where it is not ` +
			`null), sum(EXPR), avg(EXPR), min(EXPR), max(EXPR) (numbers, or strings), ` +
			`first(EXPR) and last(EXPR) (by event time), collect(EXPR) (a list, in ` +
			`arrival order) and distinct_count(EXPR). EXPR sees the record's fields as ` +
			`top-level names and msg as the metadata; null values are left out.

State: each partition's windows are stored in the sluice_state bucket ` +
			`(window.PIPELINE.STAGE.PARTITION) after each batch's outputs are stored ` +
			`and before its inputs are acknowledged, so a worker that takes a ` +
			`partition over (the owner died) carries on from there and gives the ` +
			`same results as an uninterrupted run. A partition's state must fit in ` +
			`one message of the server (1 MiB by default): use more partitions for ` +
			`many keys or long windows.

Example:

    - name: clicks
      source: generate
      with: {count: 1000, template: '{"user": seq % 10, "at": 1700000000 + seq}'}
      event_time: at
      key: user
      partitions: 4
    - name: per-minute
      transform: window
      with:
        type: tumbling
        size: 1m
        key: user
        aggregate: {clicks: count, first: 'first(at)'}`,
		Params: []stages.Param{
			{Name: "type", Type: stages.TypeString, Required: true, Enum: []string{windowTumbling, windowSliding, windowSession}, Doc: "tumbling, sliding or session."},
			{Name: "size", Type: stages.TypeDuration, Doc: "Length of a tumbling or sliding window."},
			{Name: "slide", Type: stages.TypeDuration, Doc: "How often a sliding window starts; at most size."},
			{Name: "gap", Type: stages.TypeDuration, Doc: "Quiet time after which a session closes."},
			{Name: "key", Type: stages.TypeExpr, Required: true, Doc: "Expression giving the key to group by, such as user."},
			{Name: "aggregate", Type: stages.TypeStringMap, Required: true, Doc: "Output field to aggregation, such as {n: count, total: sum(amount)}."},
			{Name: "allowed_lateness", Type: stages.TypeDuration, Default: time.Duration(0), Doc: "How long after a window's end late records still update it."},
			{Name: "late", Type: stages.TypeString, Default: lateDrop, Enum: []string{lateDrop, lateDeadLetter, lateSide}, Doc: "Where records later than allowed_lateness go: drop, dead_letter, or side (the route late)."},
		},
		Check:        checkWindow,
		Routes:       windowRoutes,
		Watermarks:   true,
		NewTransform: newWindowTransform,
	}
}

// windowConfig is a window stage's parameters, checked.
type windowConfig struct {
	kind                   string
	size, slide, gap, late time.Duration
	onLate                 string
	aggs                   []aggSpec // by output field
}

func checkWindow(p stages.Params) error {
	_, err := windowParams(p)
	return err
}

func windowParams(p stages.Params) (*windowConfig, error) {
	c := &windowConfig{kind: p.String("type"), size: p.Duration("size"), slide: p.Duration("slide"), gap: p.Duration("gap"),
		late: p.Duration("allowed_lateness"), onLate: p.String("late")}
	given := func(name string) bool { return p.Has(name) }
	switch c.kind {
	case windowTumbling, windowSliding:
		if !given("size") || c.size <= 0 {
			return nil, stages.ParamErrorf("size", "a %s window needs a size above 0", c.kind)
		}
		if given("gap") {
			return nil, stages.ParamErrorf("gap", "is for session windows")
		}
		if c.kind == windowTumbling && given("slide") {
			return nil, stages.ParamErrorf("slide", "is for sliding windows")
		}
		if c.kind == windowSliding && (!given("slide") || c.slide <= 0 || c.slide > c.size) {
			return nil, stages.ParamErrorf("slide", "a sliding window needs a slide above 0 and at most size (%s)", c.size)
		}
	case windowSession:
		if !given("gap") || c.gap <= 0 {
			return nil, stages.ParamErrorf("gap", "a session window needs a gap above 0")
		}
		for _, name := range []string{"size", "slide"} {
			if given(name) {
				return nil, stages.ParamErrorf(name, "is for tumbling and sliding windows")
			}
		}
	}
	if c.late < 0 {
		return nil, stages.ParamErrorf("allowed_lateness", "must not be negative")
	}
	fields := p.StringMap("aggregate")
	if len(fields) == 0 {
		return nil, stages.ParamErrorf("aggregate", "want at least one output field, such as {n: count}")
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	})
	for _, field := range names {
		switch field {
		case "key", "window_start", "window_end", "update":
			return nil, stages.ParamErrorf("aggregate", "field %q: the window sets it itself", field)
		}
		a, err := parseAgg(field, fields[field])
		if err != nil {
			return nil, stages.ParamErrorf("aggregate", "%v", err)
		}
		c.aggs = append(c.aggs, a)
	}
	return c, nil
}

func windowRoutes(p stages.Params) []string {
	if p.String("late") == lateSide {
		return []string{"", windowLateRoute}
	}
	return []string{""}
}

// aggSpec is one aggregate: an output field, a function, its argument.
type aggSpec struct {
	field string
	fn    string
	arg   *stages.Expr // nil for count
}

var aggFuncs = []string{"count", "sum", "avg", "min", "max", "first", "last", "collect", "distinct_count"}

// parseAgg reads "count" or "FUNC(EXPR)".
func parseAgg(field, src string) (aggSpec, error) {
	s := strings.TrimSpace(src)
	if s == "count" || s == "count()" {
		return aggSpec{field: field, fn: "count"}, nil
	}
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") {
		return aggSpec{}, fmt.Errorf("field %q: %q: want count or FUNC(EXPRESSION) with FUNC one of %s", field, src, strings.Join(aggFuncs, ", "))
	}
	fn := strings.TrimSpace(s[:open])
	if !slices.Contains(aggFuncs, fn) {
		return aggSpec{}, fmt.Errorf("field %q: unknown aggregation %q (want %s)", field, fn, strings.Join(aggFuncs, ", "))
	}
	arg := strings.TrimSpace(s[open+1 : len(s)-1])
	if arg == "" {
		return aggSpec{}, fmt.Errorf("field %q: %s needs an expression, such as %s(amount)", field, fn, fn)
	}
	e, err := stages.CompileExpr(arg)
	if err != nil {
		return aggSpec{}, fmt.Errorf("field %q: %s: expression does not compile: %s", field, fn, errtext.OneLine(err.Error()))
	}
	return aggSpec{field: field, fn: fn, arg: e}, nil
}

// aggState is the running state of one aggregate of one window, as
// checkpointed.
type aggState struct {
	N    int64           `json:"n,omitempty"`
	Sum  float64         `json:"sum,omitempty"`
	Has  bool            `json:"has,omitempty"`
	Val  any             `json:"val,omitempty"` // min, max, first, last
	T    int64           `json:"t,omitempty"`   // event time of first or last
	List []any           `json:"list,omitempty"`
	Set  map[string]bool `json:"set,omitempty"`
}

// window is one window of one key, as checkpointed.
type window struct {
	Key     any        `json:"key"`
	KeyText string     `json:"key_text"`
	Start   int64      `json:"start"` // Unix nanoseconds
	End     int64      `json:"end"`
	Emitted int        `json:"emitted,omitempty"` // emissions so far
	Pending bool       `json:"pending,omitempty"` // changed since it was last emitted
	Aggs    []aggState `json:"aggs"`
}

func (w *window) id() string { return strconv.FormatInt(w.Start, 10) + "|" + w.KeyText }

// windowPart is the state of one partition, as checkpointed.
type windowPart struct {
	// Run is the run the state belongs to: a new run of the pipeline
	// starts with none (0: stored by a version that did not say).
	Run     uint64             `json:"run,omitempty"`
	Applied map[string]uint64  `json:"applied"` // stream -> last sequence applied
	Windows map[string]*window `json:"windows"`
	Runner  json.RawMessage    `json:"runner,omitempty"`
	dirty   bool
}

type windowTransform struct {
	cfg    *windowConfig
	key    *stages.Expr
	kv     jetstream.KeyValue
	prefix string // "window.<pipeline>.<stage>."
	run    uint64 // the run, whose state alone is loaded
	max    int    // largest state a partition may have, in bytes
	parts  map[int]*windowPart
}

func newWindowTransform(p stages.Params, info stages.Info) (stages.Transform, error) {
	cfg, err := windowParams(p)
	if err != nil {
		return nil, err
	}
	key, err := stages.CompileExpr(p.String("key"))
	if err != nil {
		return nil, err
	}
	if info.State == nil {
		return nil, fmt.Errorf("window: %w: the stage keeps its state in the pipeline's state bucket and runs only in a pipeline", stages.ErrNoConn)
	}
	t := &windowTransform{cfg: cfg, key: key, kv: info.State, parts: make(map[int]*windowPart), run: info.Run,
		prefix: "window." + info.Pipeline + "." + info.Stage + "."}
	if info.Conn != nil {
		t.max = int(info.Conn.MaxPayload()) - 1024
	}
	return t, nil
}

func (t *windowTransform) part(k int) *windowPart {
	p := t.parts[k]
	if p == nil {
		p = t.freshPart()
		t.parts[k] = p
	}
	return p
}

// freshPart returns the empty state of a partition in this run.
func (t *windowTransform) freshPart() *windowPart {
	return &windowPart{Run: t.run, Applied: map[string]uint64{}, Windows: map[string]*window{}}
}

// Assign loads partition k from its checkpoint, if the checkpoint is of
// this run: a new run starts with no windows and no watermark, a resumed
// one where it was.
func (t *windowTransform) Assign(ctx context.Context, k int) ([]byte, error) {
	p := t.freshPart()
	e, err := t.kv.Get(ctx, t.prefix+strconv.Itoa(k))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return nil, fmt.Errorf("window: load partition %d: %w", k, err)
	default:
		if err := json.Unmarshal(e.Value(), p); err != nil {
			return nil, fmt.Errorf("window: load partition %d: %w", k, err)
		}
		if p.Run != 0 && p.Run != t.run {
			p = t.freshPart() // another run's
		}
		if p.Applied == nil {
			p.Applied = map[string]uint64{}
		}
		if p.Windows == nil {
			p.Windows = map[string]*window{}
		}
	}
	t.parts[k] = p
	return p.Runner, nil
}

// Checkpoint stores the partitions changed since the last call.
func (t *windowTransform) Checkpoint(ctx context.Context, runner map[int][]byte) error {
	for k, r := range runner {
		p := t.part(k)
		p.Runner, p.Run, p.dirty = r, t.run, true
	}
	for k, p := range t.parts {
		if !p.dirty {
			continue
		}
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("window: partition %d: %w", k, err)
		}
		if t.max > 0 && len(b) > t.max {
			return fmt.Errorf("window: the state of partition %d is %d bytes, more than the server takes in a message: use more partitions, or shorter windows", k, len(b))
		}
		if _, err := t.kv.Put(ctx, t.prefix+strconv.Itoa(k), b); err != nil {
			return fmt.Errorf("window: store partition %d: %w", k, err)
		}
		p.dirty = false
	}
	return nil
}

// Process adds a record to its windows; a record already applied (sent
// again after a crash) is ignored.
func (t *windowTransform) Process(ctx context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	p := t.part(in.Meta.Partition)
	if in.Meta.Stream != "" && in.Meta.Sequence <= p.Applied[in.Meta.Stream] {
		return out, nil
	}
	kv, err := t.key.Eval(in)
	if err != nil {
		return out, err
	}
	keyText, err := stages.KeyString(kv)
	if err != nil {
		return out, stages.Permanent(fmt.Errorf("window: key: %w", err))
	}
	vals := make([]any, len(t.cfg.aggs))
	for i, a := range t.cfg.aggs {
		if a.arg == nil {
			continue
		}
		if vals[i], err = a.arg.Eval(in); err != nil {
			return out, err
		}
	}
	et := stages.EventTimeOf(in).UnixNano()
	// Check the values against every window they would go into before
	// changing any: a record that fails leaves no trace.
	for _, w := range t.existing(p, keyText, et) {
		for i, a := range t.cfg.aggs {
			if err := checkAgg(&w.Aggs[i], a, vals[i]); err != nil {
				return out, stages.Permanent(fmt.Errorf("window: aggregate %q: %w", a.field, err))
			}
		}
	}
	for i, a := range t.cfg.aggs {
		if err := checkAgg(&aggState{}, a, vals[i]); err != nil {
			return out, stages.Permanent(fmt.Errorf("window: aggregate %q: %w", a.field, err))
		}
	}
	wm := int64(-1 << 63)
	if !in.Meta.Watermark.IsZero() {
		wm = in.Meta.Watermark.UnixNano()
	}
	late := t.cfg.late.Nanoseconds()
	var touched []*window
	if t.cfg.kind == windowSession {
		w, ok := t.session(p, kv, keyText, et, wm, late)
		if ok {
			touched = append(touched, w)
		}
	} else {
		for _, start := range t.starts(et) {
			end := start + t.cfg.size.Nanoseconds()
			if end+late <= wm {
				continue // closed for good
			}
			id := strconv.FormatInt(start, 10) + "|" + keyText
			w := p.Windows[id]
			if w == nil {
				w = &window{Key: kv, KeyText: keyText, Start: start, End: end, Aggs: make([]aggState, len(t.cfg.aggs))}
				p.Windows[id] = w
			}
			touched = append(touched, w)
		}
	}
	if len(touched) == 0 {
		// Later than allowed_lateness for every window it belongs to.
		switch t.cfg.onLate {
		case lateDeadLetter:
			return out, stages.Permanent(fmt.Errorf("window: late record: event time %s is more than allowed_lateness (%s) behind the end of its window, and the watermark is %s",
				time.Unix(0, et).UTC().Format(time.RFC3339Nano), t.cfg.late, in.Meta.Watermark.UTC().Format(time.RFC3339Nano)))
		case lateSide:
			in.Route = windowLateRoute
			out = append(out, in)
		}
		t.applied(p, in)
		return out, nil
	}
	for _, w := range touched {
		for i, a := range t.cfg.aggs {
			add(&w.Aggs[i], a, vals[i], et)
		}
		if w.End <= wm {
			// Late, within allowed_lateness: the window has closed, and
			// emits (again) now.
			out = append(out, t.emit(w))
		} else {
			w.Pending = true
		}
	}
	t.applied(p, in)
	return out, nil
}

func (t *windowTransform) applied(p *windowPart, in *stages.Message) {
	if in.Meta.Stream != "" {
		p.Applied[in.Meta.Stream] = in.Meta.Sequence
	}
	p.dirty = true
}

// starts returns the starts of the tumbling or sliding windows event time
// et (Unix nanoseconds) belongs to, latest first.
func (t *windowTransform) starts(et int64) []int64 {
	size := t.cfg.size.Nanoseconds()
	if t.cfg.kind == windowTumbling {
		return []int64{floorDiv(et, size) * size}
	}
	slide := t.cfg.slide.Nanoseconds()
	var out []int64
	for s := floorDiv(et, slide) * slide; s > et-size; s -= slide {
		out = append(out, s)
	}
	return out
}

// session adds a record of key at event time et to the sessions of its
// key: it opens [et, et+gap) and merges it with every session it touches.
// It reports false, changing nothing, when the merged session ended more
// than late before the watermark.
func (t *windowTransform) session(p *windowPart, kv any, keyText string, et, wm, late int64) (*window, bool) {
	gap := t.cfg.gap.Nanoseconds()
	start, end := et, et+gap
	var merge []*window
	for _, w := range p.Windows {
		if w.KeyText == keyText && w.Start < end && start < w.End {
			merge = append(merge, w)
			start, end = min(start, w.Start), max(end, w.End)
		}
	}
	if end+late <= wm {
		return nil, false
	}
	sort.Slice(merge, func(i, j int) bool { return merge[i].Start < merge[j].Start })
	n := &window{Key: kv, KeyText: keyText, Start: start, End: end, Aggs: make([]aggState, len(t.cfg.aggs))}
	for _, w := range merge {
		delete(p.Windows, w.id())
		for i, a := range t.cfg.aggs {
			mergeAgg(&n.Aggs[i], &w.Aggs[i], a)
		}
		n.Emitted = max(n.Emitted, w.Emitted)
	}
	n.Pending = n.Emitted > 0
	p.Windows[n.id()] = n
	return n, true
}

// Advance emits the windows of partition k that end at or before the
// watermark, and forgets those that also ended allowed_lateness before.
func (t *windowTransform) Advance(_ context.Context, k int, watermark time.Time, out []*stages.Message) ([]*stages.Message, error) {
	p := t.part(k)
	wm := watermark.UnixNano()
	late := t.cfg.late.Nanoseconds()
	var due []*window
	for _, w := range p.Windows {
		if w.End <= wm {
			due = append(due, w)
		}
	}
	slices.SortFunc(due, func(a, b *window) int {
		return cmp.Or(cmp.Compare(a.End, b.End), cmp.Compare(a.KeyText, b.KeyText), cmp.Compare(a.Start, b.Start))
	})
	for _, w := range due {
		if w.Emitted == 0 || w.Pending {
			out = append(out, t.emit(w))
		}
		if w.End+late <= wm || watermark.Equal(stages.EndOfTime) {
			delete(p.Windows, w.id())
		}
		p.dirty = true
	}
	return out, nil
}

// emit returns the record of window w and counts the emission.
func (t *windowTransform) emit(w *window) *stages.Message {
	rec := map[string]any{
		"key":          w.Key,
		"window_start": time.Unix(0, w.Start).UTC().Format(time.RFC3339Nano),
		"window_end":   time.Unix(0, w.End).UTC().Format(time.RFC3339Nano),
	}
	if w.Emitted > 0 {
		rec["update"] = w.Emitted
	}
	for i, a := range t.cfg.aggs {
		rec[a.field] = result(&w.Aggs[i], a)
	}
	w.Emitted, w.Pending = w.Emitted+1, false
	m := stages.NewValueMessage(rec)
	m.Header = stages.Header{stages.HeaderKey: {w.KeyText}, stages.HeaderEventTime: {stages.FormatEventTime(time.Unix(0, w.End))}}
	return m
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// existing returns the windows of key that a record at event time et
// would go into and that exist already.
func (t *windowTransform) existing(p *windowPart, keyText string, et int64) []*window {
	var out []*window
	if t.cfg.kind == windowSession {
		for _, w := range p.Windows {
			if w.KeyText == keyText && w.Start < et+t.cfg.gap.Nanoseconds() && et < w.End {
				out = append(out, w)
			}
		}
		return out
	}
	for _, start := range t.starts(et) {
		if w := p.Windows[strconv.FormatInt(start, 10)+"|"+keyText]; w != nil {
			out = append(out, w)
		}
	}
	return out
}

// checkAgg reports whether value v can be folded into s.
func checkAgg(s *aggState, a aggSpec, v any) error {
	if a.arg == nil || v == nil {
		return nil
	}
	switch a.fn {
	case "sum", "avg":
		if _, ok := number(v); !ok {
			return fmt.Errorf("%s of %s, want a number", a.fn, errtext.KindOf(v))
		}
	case "min", "max":
		other := s.Val
		if !s.Has {
			other = v
		}
		if _, err := compareValues(v, other); err != nil {
			return fmt.Errorf("%s: %w", a.fn, err)
		}
	case "distinct_count":
		if _, err := json.Marshal(v); err != nil {
			return fmt.Errorf("distinct_count: %w", err)
		}
	}
	return nil
}

// add folds value v of a record at event time et into s; checkAgg has
// accepted it.
func add(s *aggState, a aggSpec, v any, et int64) {
	if a.arg == nil {
		s.N++
		return
	}
	if v == nil {
		return
	}
	switch a.fn {
	case "count":
		s.N++
	case "sum", "avg":
		f, _ := number(v)
		s.Sum += f
		s.N++
	case "min", "max":
		if !s.Has {
			s.Val, s.Has = v, true
			return
		}
		if c, _ := compareValues(v, s.Val); a.fn == "min" && c < 0 || a.fn == "max" && c > 0 {
			s.Val = v
		}
	case "first":
		if !s.Has || et < s.T {
			s.Val, s.T, s.Has = v, et, true
		}
	case "last":
		if !s.Has || et >= s.T {
			s.Val, s.T, s.Has = v, et, true
		}
	case "collect":
		s.List = append(s.List, v)
	case "distinct_count":
		b, _ := json.Marshal(v)
		if s.Set == nil {
			s.Set = map[string]bool{}
		}
		s.Set[string(b)] = true
	}
}

// mergeAgg folds s2 into s, for sessions that merge.
func mergeAgg(s, s2 *aggState, a aggSpec) {
	s.N += s2.N
	s.Sum += s2.Sum
	s.List = append(s.List, s2.List...)
	for k := range s2.Set {
		if s.Set == nil {
			s.Set = map[string]bool{}
		}
		s.Set[k] = true
	}
	if !s2.Has {
		return
	}
	if !s.Has {
		s.Val, s.T, s.Has = s2.Val, s2.T, true
		return
	}
	switch a.fn {
	case "min", "max":
		if c, err := compareValues(s2.Val, s.Val); err == nil && (a.fn == "min" && c < 0 || a.fn == "max" && c > 0) {
			s.Val = s2.Val
		}
	case "first":
		if s2.T < s.T {
			s.Val, s.T = s2.Val, s2.T
		}
	case "last":
		if s2.T >= s.T {
			s.Val, s.T = s2.Val, s2.T
		}
	}
}

// result returns the value of aggregate a.
func result(s *aggState, a aggSpec) any {
	switch a.fn {
	case "count":
		return s.N
	case "sum":
		return s.Sum
	case "avg":
		if s.N == 0 {
			return nil
		}
		return s.Sum / float64(s.N)
	case "collect":
		if s.List == nil {
			return []any{}
		}
		return s.List
	case "distinct_count":
		return int64(len(s.Set))
	}
	return s.Val
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// compareValues compares two numbers or two strings.
func compareValues(a, b any) (int, error) {
	if x, ok := number(a); ok {
		if y, ok := number(b); ok {
			return cmp.Compare(x, y), nil
		}
	}
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), nil
		}
	}
	return 0, fmt.Errorf("cannot compare %s with %s", errtext.KindOf(a), errtext.KindOf(b))
}

// Close drops the state held; what matters is checkpointed.
func (t *windowTransform) Close(context.Context) error {
	t.parts = nil
	return nil
}
