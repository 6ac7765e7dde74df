package progress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of [Options].
const (
	DefaultRefresh        = 500 * time.Millisecond
	DefaultInterval       = 10 * time.Second
	DefaultBacklogTimeout = 2 * time.Second
	DefaultRateWindow     = 2 * time.Second
)

// Options configure a [Display].
type Options struct {
	// Terminal draws a live block on Out; otherwise the display logs a
	// "progress" line per pipeline every Interval with Logger.
	Terminal bool
	Out      io.Writer
	// Size returns the terminal's columns and rows, 0 when not known:
	// lines are cut to the width and the block to the height. Nil means
	// not known.
	Size func() (width, height int)
	// Refresh is how often the block is redrawn (default
	// [DefaultRefresh]); Interval, how often progress is logged
	// (default [DefaultInterval]).
	Refresh  time.Duration
	Interval time.Duration
	// RateWindow is how far back the rates on a terminal are measured,
	// so that they do not jump with the batches (default
	// [DefaultRateWindow]); logged rates are those since the last line.
	RateWindow time.Duration
	// Logger receives the progress lines; nil means none.
	Logger *slog.Logger
	// BacklogTimeout bounds each request for a stage's backlog (default
	// [DefaultBacklogTimeout]).
	BacklogTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.RateWindow <= 0 {
		o.RateWindow = DefaultRateWindow
	}
	if o.BacklogTimeout <= 0 {
		o.BacklogTimeout = DefaultBacklogTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Size == nil {
		o.Size = func() (int, int) { return 0, 0 }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
}

// Display shows the progress of the jobs added to it until it is
// stopped. It is safe for concurrent use.
type Display struct {
	opts Options

	mu       sync.Mutex
	jobs     []*watched
	frames   []Frame // the last sample of each job, in the order of jobs
	drawn    int     // lines of the block on the terminal now
	midLine  bool    // the last write through a Writer did not end its line
	lastDraw time.Time
	stopped  bool

	once   sync.Once
	ctx    context.Context // of the backlog requests: ends with Stop
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has returned; nil before Start
}

// New returns a display; [Display.Start] starts it.
func New(opts Options) *Display {
	opts.setDefaults()
	d := &Display{opts: opts}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

// Add makes the display watch j, until [Display.Remove] of its pipeline.
func (d *Display) Add(j Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.stopped {
		d.jobs = append(d.jobs, newWatched(j, d.opts.Now()))
	}
}

// Remove stops watching the job of pipeline and takes its lines off the
// terminal at once, so that what is written next (its summary) is not
// drawn over.
func (d *Display) Remove(pipeline string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.jobs, func(w *watched) bool { return w.job.Pipeline() == pipeline })
	if i < 0 {
		return
	}
	d.jobs = slices.Delete(d.jobs, i, i+1)
	d.frames = slices.DeleteFunc(d.frames, func(f Frame) bool { return f.Pipeline == pipeline })
	d.redraw()
}

// Start starts redrawing (on a terminal) or logging (elsewhere) in a
// goroutine of its own, until [Display.Stop], which waits for it. Call it
// at most once, and before Stop.
func (d *Display) Start() {
	every := d.opts.Interval
	if d.opts.Terminal {
		every = d.opts.Refresh
	}
	d.done = make(chan struct{})
	go func() {
		defer close(d.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-d.ctx.Done():
				return
			case <-t.C:
				d.tick()
			}
		}
	}()
}

// Stop stops the display and waits until it has: the block is erased
// from the terminal and not drawn again, and Writers write straight
// through. Calls after the first do nothing.
func (d *Display) Stop() {
	d.once.Do(func() {
		d.cancel()
		if d.done != nil {
			<-d.done
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.erase()
		d.stopped, d.jobs, d.frames = true, nil, nil
	})
}

// tick samples every job and draws the block, or logs a line per job.
func (d *Display) tick() {
	d.mu.Lock()
	jobs := slices.Clone(d.jobs)
	d.mu.Unlock()
	frames := make([]Frame, 0, len(jobs))
	window := d.opts.Interval / 2 // the last line's sample, even a tick early
	if d.opts.Terminal {
		window = d.opts.RateWindow
	}
	for _, w := range jobs {
		frames = append(frames, w.sample(d.ctx, d.opts.Now(), window, d.opts.BacklogTimeout))
	}
	// Show the frames of the jobs still watched: one may have been
	// removed while it was sampled, and its summary written since. The
	// lock keeps Remove waiting until they are shown.
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.frames = d.frames[:0]
	for i, w := range jobs {
		if slices.Contains(d.jobs, w) {
			d.frames = append(d.frames, frames[i])
		}
	}
	if !d.opts.Terminal {
		for _, f := range d.frames {
			d.opts.Logger.Info("progress", LogAttrs(f)...) // off a terminal: writes straight to the log's file
		}
		return
	}
	d.redraw()
}

// redraw erases the block and draws the frames, in one write. d.mu is
// held.
func (d *Display) redraw() {
	if !d.opts.Terminal || d.midLine {
		return
	}
	width, height := d.opts.Size()
	lines := Lines(d.frames, width)
	if height > 1 && len(lines) > height-1 {
		lines = lines[:height-1] // a block taller than the screen could not be erased
	}
	var b strings.Builder
	d.eraseTo(&b)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if b.Len() > 0 {
		_, _ = io.WriteString(d.opts.Out, b.String())
	}
	d.drawn = len(lines)
	d.lastDraw = d.opts.Now()
}

// erase takes the block off the terminal. d.mu is held.
func (d *Display) erase() {
	var b strings.Builder
	d.eraseTo(&b)
	if b.Len() > 0 {
		_, _ = io.WriteString(d.opts.Out, b.String())
	}
}

// eraseTo writes to b what erases the block: the cursor up to its first
// line, then the screen cleared from there. d.mu is held.
func (d *Display) eraseTo(b *strings.Builder) {
	if d.drawn > 0 {
		fmt.Fprintf(b, "\r\x1b[%dA\x1b[J", d.drawn)
		d.drawn = 0
	}
}

// Writer returns a writer to w that, on a terminal, erases the block
// before each write and draws it again after one that ends a line (at
// most every tenth of the refresh, else at the next refresh), so that
// lines written, logs or data, scroll above the block. Elsewhere it
// returns w. Writes are serialised with the drawing.
func (d *Display) Writer(w io.Writer) io.Writer {
	if !d.opts.Terminal {
		return w
	}
	return &writer{d: d, w: w}
}

type writer struct {
	d *Display
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	d := w.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.erase()
	n, err := w.w.Write(p)
	if n > 0 {
		d.midLine = p[n-1] != '\n'
	}
	if !d.stopped && d.opts.Now().Sub(d.lastDraw) >= d.opts.Refresh/10 {
		d.redraw()
	}
	return n, err
}
