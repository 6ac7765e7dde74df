package runner

import (
	"fmt"
	"io"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

// stageStats counts what one stage does in this process. Workers update it
// concurrently.
type stageStats struct {
	in, out, filtered, errors, dead, dropped atomic.Uint64
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
	return sum
}

// WriteTable writes the summary as a heading line and an aligned table,
// one row per stage.
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
	fmt.Fprintln(tw, "stage\trole\ttype\tin\tout\tfiltered\terrors\tdead letters\tdropped\tmsgs/s\t")
	for _, st := range s.Stages {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t\n",
			st.Name, st.Role, st.Type, st.In, st.Out, st.Filtered, st.Errors, st.DeadLetters, st.Dropped, st.Rate)
	}
	return tw.Flush()
}
