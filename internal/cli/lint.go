package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/pipeline"
)

func (a *app) lintCmd() *cobra.Command {
	var deny bool
	cmd := &cobra.Command{
		Use:   "lint FILE...",
		Short: "Validate pipeline files and warn of what is likely a mistake",
		Long: `Lint validates every pipeline file as "sluice validate" does, then warns of
what a valid pipeline allows but is most likely not meant: a route no stage
reads, a window keyed otherwise than the partitions it reads, a file sink
whose replicas share one file, a dedup_window not longer than ack_wait, and
an expression that uses the name of a builtin function (count, len, sum...)
as a field. Problems and warnings go to stderr, one per line, as
FILE:LINE:COL: message and FILE:LINE:COL: warning: message; each file that
validates gets "FILE: ok (N stages, W warnings)" on stdout.

Exit status: 2 if a file does not validate; else 1 with --deny-warnings if
there is any warning; else 0. "sluice validate --strict" is
"sluice lint --deny-warnings".`,
		Args: wantFiles,
		RunE: func(cmd *cobra.Command, files []string) error {
			return a.lint(files, deny)
		},
	}
	cmd.Flags().BoolVar(&deny, "deny-warnings", false, "exit with status 1 if there is any warning")
	return cmd
}

// lint validates files and prints the problems of those that do not
// validate and the warnings of those that do. It returns errReported (exit
// 2) if a file does not validate, else, with deny, an exit 1 if there is
// a warning.
func (a *app) lint(files []string, deny bool) error {
	bad, warned := false, false
	for _, file := range files {
		p, err := pipeline.Load(file, pipeline.Options{Registry: a.reg})
		if err != nil {
			a.printLoadError(err)
			bad = true
			continue
		}
		warnings := p.Lint()
		for _, w := range warnings {
			fmt.Fprintf(a.stderr, "%s: warning: %s\n", w.Pos, w.Msg)
		}
		fmt.Fprintf(a.stdout, "%s: ok (%s, %s)\n", file, lintCount(len(p.Stages), "stage"), lintCount(len(warnings), "warning"))
		warned = warned || len(warnings) > 0
	}
	switch {
	case bad:
		return errReported
	case warned && deny:
		return &exitError{code: ExitFailure} // the warnings are printed
	}
	return nil
}

// lintCount writes n things: "1 warning", "2 warnings".
func lintCount(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
