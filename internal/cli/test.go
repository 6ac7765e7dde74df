package cli

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/pipetest"
	"github.com/sluicehq/sluice/pipeline"
)

func (a *app) testCmd() *cobra.Command {
	var (
		junit   string
		timeout time.Duration
		verbose bool
		run     string
	)
	cmd := &cobra.Command{
		Use:   "test FILE|DIR|DIR/...",
		Short: "Run the unit tests of pipelines",
		Long: `Test runs the test cases of pipeline test files (YAML): each case feeds
records into its pipeline as the output of one stage and compares what the
stages emitted, and the dead letters, with what it expects. The cases run on a
NATS server embedded in the process, without a listener; sources are not run
(the case's records enter in their place) and sinks are replaced by captures,
so that no file, database or network the pipeline uses is touched.

A directory argument runs the files named *_test.yaml in it; DIR/... (as ./...)
those in DIR and every directory under it.

Exit status: 0 when every case passes, 1 when one fails (each failure is
printed with a diff, -expected +got), 2 for a test or pipeline file that does
not validate (every problem printed to stderr as FILE:LINE:COL: message).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("%s: want at least one test file or directory (./... for all)", cmd.Name())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := pipetest.Find(args)
			if err != nil {
				return err
			}
			var only *regexp.Regexp
			if run != "" {
				if only, err = regexp.Compile(run); err != nil {
					return fmt.Errorf("--run: %w", err)
				}
			}
			opts := pipetest.Options{Registry: a.reg, Timeout: timeout}
			if cmd.Flags().Changed("log-level") {
				// The runner's logs, to see what a case does.
				if err := a.loadSettings(); err != nil {
					return err
				}
				opts.Logger = a.log
			}
			var results []*pipetest.Result
			bad, failed := false, 0
			for _, file := range files {
				tf, err := pipetest.Load(file)
				var res *pipetest.Result
				if err == nil {
					if only != nil {
						tf.Cases = slices.DeleteFunc(tf.Cases, func(c *pipetest.Case) bool { return !only.MatchString(c.Name) })
					}
					res, err = pipetest.Run(cmd.Context(), tf, opts)
				}
				var problems pipeline.Problems
				switch {
				case errors.As(err, &problems):
					for _, p := range problems {
						fmt.Fprintln(a.stderr, p.String())
					}
				case err != nil && cmd.Context().Err() != nil:
					return failure(err)
				case err != nil:
					a.printError(err)
				}
				if err != nil {
					results = append(results, &pipetest.Result{File: file, Err: err})
					bad = true
					continue
				}
				results = append(results, res)
				failed += res.Failed()
				a.printResult(res, verbose)
			}
			if junit != "" {
				if err := writeJUnit(junit, results); err != nil {
					return failure(err)
				}
			}
			switch {
			case bad:
				return errReported
			case failed > 0:
				return &exitError{code: ExitFailure}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&junit, "junit", "", "also write the results to this file as JUnit XML")
	f.DurationVar(&timeout, "timeout", pipetest.DefaultTimeout, "how long each case may run")
	f.BoolVarP(&verbose, "verbose", "v", false, "name every case, also those that pass")
	f.StringVar(&run, "run", "", "run only the cases whose name matches this regular expression")
	return cmd
}

// printResult prints the cases of a test file that failed, with their
// diffs, each passing one too if verbose, then a line for the file.
func (a *app) printResult(res *pipetest.Result, verbose bool) {
	for _, c := range res.Cases {
		switch {
		case c.Passed() && verbose:
			fmt.Fprintf(a.stdout, "--- PASS: %s (%.2fs)\n", c.Name, c.Elapsed.Seconds())
		case !c.Passed():
			fmt.Fprintf(a.stdout, "--- FAIL: %s (%s) (%.2fs)\n", c.Name, c.Pos, c.Elapsed.Seconds())
			if c.Err != nil {
				fmt.Fprintf(a.stdout, "    %s\n", strings.TrimPrefix(c.Err.Error(), "sluice: "))
			}
			for _, f := range c.Failures {
				fmt.Fprintf(a.stdout, "    %s\n", strings.ReplaceAll(f, "\n", "\n    "))
			}
		}
	}
	if n := res.Failed(); n > 0 {
		fmt.Fprintf(a.stdout, "FAIL\t%s\t%d of %d cases failed (%.2fs)\n", res.File, n, len(res.Cases), res.Elapsed.Seconds())
		return
	}
	fmt.Fprintf(a.stdout, "ok\t%s\t%s (%.2fs)\n", res.File, cases(len(res.Cases)), res.Elapsed.Seconds())
}

// cases returns "1 case" or "N cases".
func cases(n int) string {
	if n == 1 {
		return "1 case"
	}
	return fmt.Sprintf("%d cases", n)
}

// writeJUnit writes results to path as JUnit XML.
func writeJUnit(path string, results []*pipetest.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("junit report: %w", err)
	}
	if err := pipetest.WriteJUnit(f, results); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("junit report: %w", err)
	}
	return nil
}
