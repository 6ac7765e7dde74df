package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sluicehq/sluice/cluster"
)

// defaultTopInterval is how often top samples by default.
const defaultTopInterval = time.Second

func (a *app) topCmd() *cobra.Command {
	var once bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "top [PIPELINE]",
		Short: "Watch the stages of running pipelines live: counts, rates, backlog, errors, dead letters",
		Long: `Top shows, live in the terminal, a row per stage of every running pipeline (or
of PIPELINE): its workers, the messages it took in and sent out in the
current run and their rates per second (from the last two samples), the
messages pending on its inputs (not yet delivered, and delivered but not yet
acknowledged), its failed attempts (retried), its dead letters, and whether a
destination that is down holds it. It samples every --interval; q, Esc or
Ctrl-C quits. --once prints the table once, with the rates the workers
report (over the last minute on a cluster, since the start of a local run),
and exits: for scripts.

Without --nats (or SLUICE_NATS_URL), top watches the "sluice run" that holds
the store (--store-dir), through the private endpoint it records there; with
--nats, the pipelines deployed on the cluster behind it, from the workers'
heartbeats and the stages' consumers.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return fmt.Errorf("top: --interval must be > 0 (got %s)", interval)
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return a.withRun(cmd.Context(), func(ctx context.Context, c *conn) error {
				fetch := func(ctx context.Context) (*cluster.StatusReport, error) { return status(ctx, c, name) }
				where := "cluster"
				if c.local != nil {
					where = fmt.Sprintf("local run, process %d", c.local.PID)
				}
				if once {
					st, err := fetch(ctx)
					if err != nil {
						return failure(err)
					}
					if err := writeTop(a.stdout, topRows(nil, topSample{st: st, at: time.Now()})); err != nil {
						return failure(err)
					}
					return failure(writeTopNotes(a.stdout, st))
				}
				return failure(a.topLive(ctx, fetch, where, interval))
			})
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "print the table once and exit")
	cmd.Flags().DurationVar(&interval, "interval", defaultTopInterval, "how often to sample")
	return cmd
}

// topSample is a status report and when it was taken.
type topSample struct {
	st *cluster.StatusReport
	at time.Time
}

// topRow is a row of top: one stage.
type topRow struct {
	pipeline, stage     string
	workers             int
	in, out             uint64
	inRate, outRate     float64
	outRateKnown        bool
	pending, ackPending uint64
	pendingKnown        bool
	errors, deadLetters uint64
	held                bool
	unknown             string
}

// topRows returns the rows of sample cur; with prev, an earlier sample,
// their rates are those between the two, else those reported.
func topRows(prev *topSample, cur topSample) []topRow {
	before := map[[2]string]cluster.StageStatus{}
	var dt float64
	if prev != nil {
		dt = cur.at.Sub(prev.at).Seconds()
		for _, ps := range prev.st.Pipelines {
			for _, s := range ps.Stages {
				before[[2]string{ps.Deployment.Name, s.Name}] = s
			}
		}
	}
	var rows []topRow
	for _, ps := range cur.st.Pipelines {
		for _, s := range ps.Stages {
			r := topRow{
				pipeline: ps.Deployment.Name, stage: s.Name, workers: len(s.Workers),
				in: s.In, out: s.Out, inRate: s.Rate,
				pending: s.Pending, ackPending: s.AckPending, pendingKnown: len(s.Inputs) > 0 && s.Unknown == "",
				errors: s.Errors, deadLetters: s.DeadLetters, held: len(s.Held) > 0, unknown: s.Unknown,
			}
			if b, ok := before[[2]string{r.pipeline, r.stage}]; ok && dt > 0 {
				r.inRate, r.outRate, r.outRateKnown = rate(b.In, s.In, dt), rate(b.Out, s.Out, dt), true
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// rate is the rate per second of a counter that went from a to b in dt
// seconds; 0 if it went down (a new run, a worker gone).
func rate(a, b uint64, dt float64) float64 {
	if b < a {
		return 0
	}
	return float64(b-a) / dt
}

// writeTop writes rows as a table.
func writeTop(w io.Writer, rows []topRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no pipeline running")
		return err
	}
	fmt.Fprintln(tw, "PIPELINE\tSTAGE\tWORKERS\tIN\tOUT\tIN/S\tOUT/S\tPENDING\tACK PENDING\tERRORS\tDLQ\tHELD")
	for _, r := range rows {
		pending, ack := "-", "-"
		switch {
		case r.unknown != "":
			pending, ack = "?", "?"
		case r.pendingKnown:
			pending, ack = strconv.FormatUint(r.pending, 10), strconv.FormatUint(r.ackPending, 10)
		}
		outRate := "-"
		if r.outRateKnown {
			outRate = fmt.Sprintf("%.1f", r.outRate)
		}
		held := "-"
		if r.held {
			held = "HELD"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%.1f\t%s\t%s\t%s\t%d\t%d\t%s\n", r.pipeline, r.stage, r.workers,
			r.in, r.out, r.inRate, outRate, pending, ack, r.errors, r.deadLetters, held)
	}
	return tw.Flush()
}

// writeTopNotes writes, below the table, what holds a stage, why a
// backlog is not known and what failed, a line each.
func writeTopNotes(w io.Writer, st *cluster.StatusReport) error {
	var notes []string
	for _, ps := range st.Pipelines {
		for _, s := range ps.Stages {
			for _, h := range s.Held {
				notes = append(notes, fmt.Sprintf("%s/%s held on %s for %s: %s", ps.Deployment.Name, s.Name, h.Worker, time.Since(h.Since).Round(time.Second), h.Error))
			}
			if s.Unknown != "" {
				notes = append(notes, fmt.Sprintf("%s/%s backlog not known: %s", ps.Deployment.Name, s.Name, s.Unknown))
			}
		}
		for _, e := range ps.Errors {
			notes = append(notes, fmt.Sprintf("%s error: %s", ps.Deployment.Name, e))
		}
	}
	if len(notes) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	return err
}

// topLive runs top's terminal view until the user quits or ctx ends.
func (a *app) topLive(ctx context.Context, fetch func(context.Context) (*cluster.StatusReport, error), where string, interval time.Duration) error {
	in, inOK := a.stdin.(*os.File)
	out, outOK := a.stdout.(*os.File)
	if !inOK || !outOK || !term.IsTerminal(int(out.Fd())) {
		return errors.New("top: the live view needs a terminal; give --once to print the table once")
	}
	m := &topModel{where: where, interval: interval, fetch: func() (*cluster.StatusReport, error) {
		ctx, cancel := context.WithTimeout(ctx, localStatusTimeout)
		defer cancel()
		return fetch(ctx)
	}}
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// topModel is top's terminal view, a bubbletea model.
type topModel struct {
	fetch    func() (*cluster.StatusReport, error) // takes a sample, within the command's context
	where    string
	interval time.Duration

	prev, cur *topSample
	err       error
}

// topSampled is a sample taken, or why it could not be.
type topSampled struct {
	s   topSample
	err error
}

// topTick asks for the next sample.
type topTick struct{}

func (m *topModel) sample() tea.Msg {
	st, err := m.fetch()
	return topSampled{s: topSample{st: st, at: time.Now()}, err: err}
}

// Init implements tea.Model: it takes the first sample.
func (m *topModel) Init() tea.Cmd { return m.sample }

// Update implements tea.Model.
func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "esc", "ctrl+c":
			return m, tea.Quit
		}
	case topSampled:
		m.err = msg.err
		if msg.err == nil {
			m.prev, m.cur = m.cur, &msg.s
		}
		return m, tea.Tick(m.interval, func(time.Time) tea.Msg { return topTick{} })
	case topTick:
		return m, m.sample
	}
	return m, nil
}

// View implements tea.Model.
func (m *topModel) View() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sluice top — %s — every %s — q to quit\n\n", m.where, m.interval)
	if m.cur != nil {
		_ = writeTop(&b, topRows(m.prev, *m.cur))
		_ = writeTopNotes(&b, m.cur.st)
		fmt.Fprintf(&b, "\nsampled %s\n", m.cur.at.Format(time.TimeOnly))
	} else if m.err == nil {
		b.WriteString("sampling…\n")
	}
	if m.err != nil {
		fmt.Fprintf(&b, "\nerror: %v\n", m.err)
	}
	return b.String()
}
