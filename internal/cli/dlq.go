package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/dlq"
)

func (a *app) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, replay and purge the dead letters of a pipeline",
		Long: `A message a stage could not process (a permanent error, or an error on its
last allowed attempt with on_error: retry, or any error with on_error:
dead_letter) goes to the pipeline's dead-letter stream with its payload, its
headers, and Sluice-Error, Sluice-Stage, Sluice-Deliveries and Sluice-Run (the
run it belongs to).

dlq list shows them; dlq purge deletes them.

dlq replay puts them back on the input of the stage that failed on them, where
only that stage reads them, as part of the run they belong to, and removes
each from the dead-letter stream once its republication is acknowledged. Fix
the stage first. Then:
  - a run still going (a deployed pipeline, or "sluice run --listen" and
    "dlq replay --nats") processes the replays;
  - a run that has finished is resumed by the next "sluice run FILE" for the
    replays alone: its sources do not read again, only the replayed records
    flow, and sinks add what they make of them to the run's output; the
    summary says "replay of run N". "sluice run --fresh" starts over instead
    and discards them.
Only dead letters of the pipeline's latest run are replayed: once a new run
has begun, an earlier run's dead letters are left in place (exit status 1);
remove them with dlq purge --run N. Records a source could not read cannot be
replayed either: they were never on a stream.

Without --nats these commands reach the "sluice run" that holds the store
(--store-dir) through the private endpoint it records there, and open the
store themselves when no run holds it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return errors.New("dlq: missing command: list, replay or purge")
		},
	}
	cmd.AddCommand(a.dlqListCmd(), a.dlqReplayCmd(), a.dlqPurgeCmd())
	return cmd
}

func wantPipelineName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s: want one pipeline name (got %d arguments)", cmd.CommandPath(), len(args))
	}
	return nil
}

// filterFlags adds --stage and --run, which fill f.
func filterFlags(cmd *cobra.Command, f *dlq.Filter) {
	cmd.Flags().StringVar(&f.Stage, "stage", "", "only the dead letters of this stage")
	cmd.Flags().Uint64Var(&f.Run, "run", 0, "only the dead letters of this run (0: every run)")
}

func (a *app) dlqListCmd() *cobra.Command {
	var f dlq.Filter
	var limit int
	var full bool
	cmd := &cobra.Command{
		Use:   "list PIPELINE",
		Short: "Show a pipeline's dead letters with their run and reason, oldest first",
		Args:  wantPipelineName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return fmt.Errorf("dlq list: --limit must be >= 0 (got %d)", limit)
			}
			return a.withNATS(cmd.Context(), false, func(ctx context.Context, c *conn) error {
				dead, err := dlq.List(ctx, c.nc, args[0], f, limit)
				if err != nil {
					return failure(err)
				}
				if full {
					return failure(writeWholeDeadLetters(ctx, a, c.nc, dead))
				}
				return failure(writeDeadLetters(a, dead))
			})
		},
	}
	filterFlags(cmd, &f)
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most this many; 0 shows all")
	cmd.Flags().BoolVar(&full, "full", false, "write each dead letter as a JSON line with its whole payload (also one too large for NATS, kept in the object store)")
	return cmd
}

// writeDeadLetters prints dead letters as a table on stdout.
func writeDeadLetters(a *app, dead []dlq.DeadLetter) error {
	if len(dead) == 0 {
		_, err := fmt.Fprintln(a.stdout, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tRUN\tSTAGE\tDELIVERIES\tERROR\tPAYLOAD")
	for _, dl := range dead {
		run := "-" // dead-lettered before sluice recorded the run
		if dl.Run != 0 {
			run = strconv.FormatUint(dl.Run, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", dl.Seq, dl.Time.UTC().Format(time.RFC3339), run, dl.Stage, dl.Deliveries,
			oneLine(dl.Error, 100), oneLine(string(dl.Data), 60))
	}
	return tw.Flush()
}

// writeWholeDeadLetters writes dead letters as JSON lines on stdout, each
// with its whole payload.
func writeWholeDeadLetters(ctx context.Context, a *app, nc *nats.Conn, dead []dlq.DeadLetter) error {
	enc := json.NewEncoder(a.stdout)
	for _, dl := range dead {
		whole, err := dlq.Whole(ctx, nc, dl)
		if err != nil {
			return err
		}
		var text *string
		var binary []byte
		if utf8.Valid(whole) {
			s := string(whole)
			text = &s
		} else {
			binary = whole
		}
		if err := enc.Encode(struct {
			Seq        uint64    `json:"seq"`
			Time       time.Time `json:"time"`
			Run        uint64    `json:"run,omitempty"`
			Stage      string    `json:"stage"`
			Deliveries uint64    `json:"deliveries"`
			Error      string    `json:"error"`
			Subject    string    `json:"subject,omitempty"`
			Payload    *string   `json:"payload,omitempty"`
			Binary     []byte    `json:"payload_base64,omitempty"` // a payload that is not UTF-8 text, as it is
		}{dl.Seq, dl.Time.UTC(), dl.Run, dl.Stage, dl.Deliveries, dl.Error, dl.Subject, text, binary}); err != nil {
			return err
		}
	}
	return nil
}

// oneLine fits s in a table cell: control characters and invalid UTF-8
// become spaces and U+FFFD, and it is cut to max characters.
func oneLine(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return s
}

func (a *app) dlqReplayCmd() *cobra.Command {
	var f dlq.Filter
	cmd := &cobra.Command{
		Use:   "replay PIPELINE",
		Short: "Put a pipeline's dead letters back on the input of the stage that failed on them",
		Long: `Replay puts the dead letters of the pipeline's latest run back on the input of
the stage that failed on them, where only that stage reads them, and removes
each from the dead-letter stream once its republication is acknowledged. Fix
the stage first. A run still going processes the replays; a run that has
finished is resumed by the next "sluice run FILE" for the replays alone (its
sources do not read again; sinks add to the run's output; the summary says
"replay of run N"), and "sluice run --fresh" discards them instead.

Dead letters of an earlier run (a new run has begun since) and records a
source could not read are left in place and counted, and the exit status is
1; "sluice dlq purge PIPELINE --run N" removes an earlier run's.`,
		Args: wantPipelineName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNATS(cmd.Context(), false, func(ctx context.Context, c *conn) error {
				res, err := dlq.Replay(ctx, c.nc, args[0], f)
				fmt.Fprintf(a.stderr, "replayed %d dead letters, %d left in place\n", res.Replayed, res.Skipped)
				if errors.Is(err, dlq.ErrOlderRun) {
					err = fmt.Errorf("%w; \"sluice dlq purge %s --run N\" removes the dead letters of an earlier run N", err, args[0])
				}
				return failure(err)
			})
		},
	}
	filterFlags(cmd, &f)
	return cmd
}

func (a *app) dlqPurgeCmd() *cobra.Command {
	var f dlq.Filter
	cmd := &cobra.Command{
		Use:   "purge PIPELINE",
		Short: "Delete a pipeline's dead letters: all, one stage's or one run's",
		Long: `Purge deletes the dead letters of the pipeline (with --stage, of that stage;
with --run, of that run; both: of that stage in that run) without asking, and
prints how many on stdout ("purged N dead letters"). The pipeline must have
run on the server.`,
		Args: wantPipelineName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNATS(cmd.Context(), false, func(ctx context.Context, c *conn) error {
				n, err := dlq.Purge(ctx, c.nc, args[0], f)
				if err != nil {
					return failure(err)
				}
				_, err = fmt.Fprintf(a.stdout, "purged %d dead letters\n", n)
				return failure(err)
			})
		},
	}
	filterFlags(cmd, &f)
	return cmd
}

// withNATS loads the settings, connects as they say (patiently: see
// connect) and runs fn. For a command that is not patient, the server
// refusing a request for want of a permission ends fn at once, with that
// as its error: the request would only time out.
func (a *app) withNATS(ctx context.Context, patient bool, fn func(context.Context, *conn) error) error {
	if err := a.loadSettings(); err != nil {
		return err
	}
	c, err := a.connect(ctx, patient)
	if err != nil {
		if patient && ctx.Err() != nil {
			return nil // stopped while waiting for the server
		}
		return failure(err)
	}
	defer c.close()
	if patient {
		return fn(ctx, c)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c.denied.Store(&cancel)
	err = fn(ctx, c)
	if cause := context.Cause(ctx); errors.Is(cause, nats.ErrPermissionViolation) {
		return failure(fmt.Errorf("%w: the NATS user lacks a permission this needs (see docs/operations.md, \"Roles\")", cause))
	}
	return err
}
