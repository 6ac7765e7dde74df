package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/dlq"
)

func (a *app) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List and replay the dead letters of a pipeline",
		Long: `A message a stage could not process (a permanent error, or an error on its
last allowed attempt with on_error: retry, or any error with on_error:
dead_letter) goes to the pipeline's dead-letter stream with its payload, its
headers, and Sluice-Error, Sluice-Stage and Sluice-Deliveries.

dlq list shows them; dlq replay puts them back on the input of the stage that
failed on them, where only that stage reads them, and removes each from the
dead-letter stream once its republication is acknowledged. Fix the stage
first; the next run of the pipeline (or of that stage, with a running
pipeline's workers) processes the replays. Records a source could not read
cannot be replayed: they were never on a stream.

Without --nats both commands open the embedded server's store: run them when
no "sluice run" uses it, or point --nats at a run started with --listen.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return errors.New("dlq: missing command: list or replay")
		},
	}
	cmd.AddCommand(a.dlqListCmd(), a.dlqReplayCmd())
	return cmd
}

func wantPipelineName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s: want one pipeline name (got %d arguments)", cmd.CommandPath(), len(args))
	}
	return nil
}

func (a *app) dlqListCmd() *cobra.Command {
	var stage string
	var limit int
	cmd := &cobra.Command{
		Use:   "list PIPELINE",
		Short: "Show a pipeline's dead letters with their reasons, oldest first",
		Args:  wantPipelineName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return fmt.Errorf("dlq list: --limit must be >= 0 (got %d)", limit)
			}
			return a.withNATS(cmd.Context(), false, func(ctx context.Context, c *conn) error {
				dead, err := dlq.List(ctx, c.nc, args[0], stage, limit)
				if err != nil {
					return failure(err)
				}
				return failure(writeDeadLetters(a, dead))
			})
		},
	}
	cmd.Flags().StringVar(&stage, "stage", "", "only the dead letters of this stage")
	cmd.Flags().IntVar(&limit, "limit", 20, "show at most this many; 0 shows all")
	return cmd
}

// writeDeadLetters prints dead letters as a table on stdout.
func writeDeadLetters(a *app, dead []dlq.DeadLetter) error {
	if len(dead) == 0 {
		_, err := fmt.Fprintln(a.stdout, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSTAGE\tDELIVERIES\tERROR\tPAYLOAD")
	for _, dl := range dead {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", dl.Seq, dl.Time.UTC().Format(time.RFC3339), dl.Stage, dl.Deliveries,
			oneLine(dl.Error, 100), oneLine(string(dl.Data), 60))
	}
	return tw.Flush()
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
	var stage string
	cmd := &cobra.Command{
		Use:   "replay PIPELINE",
		Short: "Put a pipeline's dead letters back on the input of the stage that failed on them",
		Args:  wantPipelineName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNATS(cmd.Context(), false, func(ctx context.Context, c *conn) error {
				res, err := dlq.Replay(ctx, c.nc, args[0], stage)
				fmt.Fprintf(a.stderr, "replayed %d dead letters, %d left in place\n", res.Replayed, res.Skipped)
				return failure(err)
			})
		},
	}
	cmd.Flags().StringVar(&stage, "stage", "", "only the dead letters of this stage")
	return cmd
}

// withNATS loads the settings, connects as they say (patiently: see
// connect) and runs fn.
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
	return fn(ctx, c)
}
