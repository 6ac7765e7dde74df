package cli

import (
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sluicehq/sluice/internal/progress"
	"github.com/sluicehq/sluice/runner"
)

// progressFlags adds run's flags of the progress display.
func (a *app) progressFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&a.quiet, "quiet", "q", false, "show no progress while the pipelines run (logs and summaries stay)")
	cmd.Flags().Duration("progress-interval", 0, "when stderr is not a terminal, how often to log a progress line per pipeline (default 10s)")
	a.bind("progress_interval", cmd.Flags().Lookup("progress-interval"))
}

// showProgress starts the progress display of run, unless --quiet: on a
// terminal (stderr) a block redrawn below what stderr shows, which then
// goes through it (logs, summaries), as does stdout when it is the
// terminal too; elsewhere a "progress" log line per pipeline every
// progress_interval. It hooks into a.started and a.stopped: a pipeline's
// lines go away before its summary is written. It replaces a.log and
// a.stderr, so it is called before anything else uses them. The returned
// func stops the display.
func (a *app) showProgress() func() {
	if a.quiet {
		return func() {}
	}
	tty, fd := terminal(a.stderr)
	d := progress.New(progress.Options{
		Terminal: tty,
		Out:      a.stderr,
		Size: func() (int, int) {
			w, h, err := term.GetSize(fd)
			if err != nil {
				return 0, 0
			}
			return w, h
		},
		Interval: a.settings.ProgressInterval,
		Logger:   a.log,
	})
	if tty {
		s := a.settings
		if s.LogFormat == "auto" {
			s.LogFormat = "text" // what auto makes of the terminal behind the writer
		}
		a.stderr = d.Writer(a.stderr) // logs, summaries, errors
		if log, err := s.NewLogger(a.stderr); err == nil {
			a.log = log
		}
		if out, _ := terminal(a.stdout); out {
			a.stdout = d.Writer(a.stdout)
		}
	}
	a.started = append(a.started, func(j *runner.Job) { d.Add(j) })
	a.stopped = append(a.stopped, d.Remove)
	d.Start()
	return d.Stop
}

// terminal reports whether w is a file open on a terminal, and its
// descriptor.
func terminal(w any) (bool, int) {
	f, ok := w.(*os.File)
	if !ok {
		return false, -1
	}
	fd := int(f.Fd())
	return term.IsTerminal(fd), fd
}
