package progress

import (
	"context"
	"time"

	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// Job is what the display reads of a run; *runner.Job satisfies it, and
// its methods mean what the runner's do. The display calls them from its
// own goroutine, so they must be safe for concurrent use.
type Job interface {
	Pipeline() string // the pipeline's name
	ID() uint64       // the run's number
	Stages() []string // the stages run in this process, in pipeline order
	// Stage returns what stage name did in this process so far.
	Stage(name string) runner.StageSummary
	// Backlog returns what waits for stage name on its inputs; ok is
	// false for a source. ctx bounds the request.
	Backlog(ctx context.Context, name string) (b runner.Backlog, ok bool, err error)
	// SourceProgress returns the bytes source name has read, of total
	// (-1 unknown); ok is false for a stage that does not tell.
	SourceProgress(name string) (done, total int64, ok bool)
}

var _ Job = (*runner.Job)(nil)

// Row is the state of one stage at one sample.
type Row struct {
	Stage string
	Role  stages.Role
	In    uint64
	Out   uint64
	// Rate is In per second over the last rate window (see
	// [Options.RateWindow]), or since the job was added; -1 when no time
	// has passed.
	Rate float64
	// Pending is what waits for the stage on its inputs (not delivered,
	// or delivered and not acknowledged); HasPending is false for a
	// source, or when the server did not answer in time.
	Pending    uint64
	HasPending bool
	// Done and Total are the bytes a source has read and has in all
	// (Total -1 when unknown); HasBytes is false for a stage that does
	// not tell.
	Done, Total int64
	HasBytes    bool
	// ETA is how long the source needs for the rest at its average rate
	// over the last etaWindow; HasETA is false when that is not known
	// (yet).
	ETA    time.Duration
	HasETA bool
	// Held is how long the stage has been held by a destination that is
	// down; 0 if it is not.
	Held time.Duration
}

// Frame is the state of one pipeline's run at one sample.
type Frame struct {
	Pipeline string
	Run      uint64
	Elapsed  time.Duration // since the display began to watch the run
	Rows     []Row
}

// watched is a job and what the display remembers of its last samples.
type watched struct {
	job   Job
	since time.Time
	ins   map[string][]mark // the stage's in counts in the last rate window
	bytes map[string][]mark // a source's bytes read in the last etaWindow
}

// etaWindow is how far back the rate that an ETA assumes is measured: a
// jump (a source resuming at its checkpoint) weighs on it for that long
// at most.
const etaWindow = 20 * time.Second

// mark is a count at a time.
type mark struct {
	n  int64
	at time.Time
}

// newWatched starts watching j at now: the counts of its stages in this
// process start at 0 when it starts, and its sources at where they
// resume, so that the first sample has rates and ETAs.
func newWatched(j Job, now time.Time) *watched {
	w := &watched{job: j, since: now, ins: make(map[string][]mark), bytes: make(map[string][]mark)}
	for _, name := range j.Stages() {
		w.ins[name] = []mark{{0, now}}
		if done, _, ok := j.SourceProgress(name); ok {
			w.bytes[name] = []mark{{done, now}}
		}
	}
	return w
}

// sample reads the job's stages at now, rates over window, each backlog
// request bounded by timeout and by ctx, and returns the frame.
func (w *watched) sample(ctx context.Context, now time.Time, window, timeout time.Duration) Frame {
	f := Frame{Pipeline: w.job.Pipeline(), Run: w.job.ID(), Elapsed: now.Sub(w.since)}
	for _, name := range w.job.Stages() {
		s := w.job.Stage(name)
		r := Row{Stage: name, Role: s.Role, In: s.In, Out: s.Out, Rate: -1}
		w.ins[name] = slide(w.ins[name], mark{int64(s.In), now}, window)
		if first := w.ins[name][0]; now.After(first.at) {
			r.Rate = max(float64(int64(s.In)-first.n), 0) / now.Sub(first.at).Seconds()
		}
		if !s.HeldSince.IsZero() {
			r.Held = max(now.Sub(s.HeldSince), time.Second)
		}
		if s.Role != stages.RoleSource {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			b, ok, err := w.job.Backlog(ctx, name)
			cancel()
			if ok && err == nil {
				r.Pending, r.HasPending = b.Pending+b.AckPending, true
			}
		}
		if done, total, ok := w.job.SourceProgress(name); ok {
			r.Done, r.Total, r.HasBytes = done, total, true
			r.ETA, r.HasETA = w.eta(name, done, total, now)
		}
		f.Rows = append(f.Rows, r)
	}
	return f
}

// eta estimates how long source name needs to read total bytes, at its
// average rate over the last etaWindow.
func (w *watched) eta(name string, done, total int64, now time.Time) (time.Duration, bool) {
	marks := w.bytes[name]
	if n := len(marks); n > 0 && done < marks[n-1].n {
		marks = nil // it went back: what came before says nothing
	}
	marks = slide(marks, mark{done, now}, etaWindow)
	w.bytes[name] = marks
	if total < 0 {
		return 0, false
	}
	if done >= total {
		return 0, true
	}
	first := marks[0]
	dt := now.Sub(first.at)
	read := done - first.n
	if read <= 0 || dt <= 0 {
		return 0, false
	}
	left := float64(total-done) / float64(read) * float64(dt)
	return time.Duration(left), true
}

// slide appends m to marks and drops the marks before the last one that
// is at least window older than m: the first mark left is the one to
// measure a rate over window from.
func slide(marks []mark, m mark, window time.Duration) []mark {
	marks = append(marks, m)
	i := 0
	for len(marks)-i > 2 && m.at.Sub(marks[i+1].at) >= window {
		i++
	}
	return append(marks[:0], marks[i:]...)
}
