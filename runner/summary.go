package runner

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// stageStats counts what one stage does in this process. Workers update it
// concurrently.
type stageStats struct {
	in, out, filtered, errors, dead, dropped atomic.Uint64
	hold                                     holdStats
	// progress is the source of a source stage run here, if it reports
	// how far it has read.
	progress atomic.Pointer[stages.ProgressReporter]
}

// holdStats tracks when a stage is held by a destination that is down:
// from the moment one of its workers in this process is held until none
// is. Workers update it as they become held and recover, never per
// record.
type holdStats struct {
	mu      sync.Mutex
	workers int           // workers held now
	since   time.Time     // when the stage became held, if workers > 0
	reason  string        // the destination's error, credentials removed, if workers > 0
	total   time.Duration // held time of the outages over
	outages uint64        // how often the stage became held
}

// begin records that a worker is held at now by the destination error
// err, and reports whether the stage became held with it.
func (h *holdStats) begin(now time.Time, err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.workers++
	if h.workers > 1 {
		return false
	}
	h.since, h.reason = now, redactURLs(err.Error())
	h.outages++
	return true
}

// end records that a worker held since its own hold began is held no
// more, and reports whether the stage is held no more and for how long it
// was.
func (h *holdStats) end(now time.Time) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.workers--
	if h.workers > 0 {
		return 0, false
	}
	d := now.Sub(h.since)
	h.total += d
	h.since, h.reason = time.Time{}, ""
	return d, true
}

// fill sets the held fields of sum as of now.
func (h *holdStats) fill(sum *StageSummary, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sum.Held, sum.Outages = h.total, h.outages
	if h.workers > 0 {
		sum.Held += now.Sub(h.since)
		sum.HeldSince, sum.HeldBy = h.since, h.reason
	}
}

// urlUserinfo matches the user name and password of a URL in a text.
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@`)

// redactURLs returns text with the user names and passwords of the URLs
// in it removed: a stage's error may name where it writes, and what the
// runner shows of it (summary, status) must not hold a secret.
func redactURLs(text string) string {
	return urlUserinfo.ReplaceAllString(text, "${1}")
}

func (s *stageStats) summary(st *pipeline.Stage, elapsed time.Duration) StageSummary {
	sum := StageSummary{
		Name:        st.Name,
		Role:        st.Role,
		Type:        st.Type,
		In:          s.in.Load(),
		Out:         s.out.Load(),
		Filtered:    s.filtered.Load(),
		Errors:      s.errors.Load(),
		DeadLetters: s.dead.Load(),
		Dropped:     s.dropped.Load(),
	}
	if secs := elapsed.Seconds(); secs > 0 {
		sum.Rate = float64(sum.In) / secs
	}
	s.hold.fill(&sum, time.Now())
	return sum
}

// WriteTable writes the summary as a heading line and an aligned table,
// one row per stage; a column held, when a stage was held by a
// destination that was down, says how long and in how many outages.
func (s *Summary) WriteTable(w io.Writer) error {
	state := "finished"
	if s.Interrupted {
		state = "interrupted"
	}
	run := "run"
	switch {
	case s.Replay:
		run = "replay of run"
	case s.Resumed:
		run = "resumed run"
	}
	if _, err := fmt.Fprintf(w, "pipeline %s %s %d %s in %s\n", s.Pipeline, run, s.Run, state, s.Elapsed.Round(time.Millisecond)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The held column only when a stage was held.
	held := slices.ContainsFunc(s.Stages, func(st StageSummary) bool { return st.Outages > 0 })
	fmt.Fprint(tw, "stage\trole\ttype\tin\tout\tfiltered\terrors\tdead letters\tdropped\tmsgs/s\t")
	if held {
		fmt.Fprint(tw, "held\t")
	}
	fmt.Fprintln(tw)
	for _, st := range s.Stages {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t",
			st.Name, st.Role, st.Type, st.In, st.Out, st.Filtered, st.Errors, st.DeadLetters, st.Dropped, st.Rate)
		if held {
			fmt.Fprintf(tw, "%s\t", heldCell(st))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// heldCell is the summary's held column for st: how long the stage was
// held by a destination that was down, and in how many outages; 0s if it
// never was.
func heldCell(st StageSummary) string {
	switch st.Outages {
	case 0:
		return "0s"
	case 1:
		return st.Held.Round(time.Millisecond).String() + " (1 outage)"
	}
	return fmt.Sprintf("%s (%d outages)", st.Held.Round(time.Millisecond), st.Outages)
}
