package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/pipeline"
)

func (a *app) validateCmd() *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check pipeline files without running them",
		Long: `Validate decodes and checks every pipeline file, without NATS. It prints every
problem found to stderr, one per line as FILE:LINE:COL: message, and exits
with status 2 if there is any; each file that validates gets
"FILE: ok (N stages)" on stdout. A file larger than 16 MiB is refused
before it is read. With --strict, it also prints the warnings of "sluice
lint" and exits with status 1 if there is any: it is "lint --deny-warnings".`,
		Args: wantFiles,
		RunE: func(cmd *cobra.Command, files []string) error {
			if strict {
				return a.lint(files, true)
			}
			bad := false
			for _, file := range files {
				p, err := pipeline.Load(file, pipeline.Options{Registry: a.reg})
				if err != nil {
					a.printLoadError(err)
					bad = true
					continue
				}
				fmt.Fprintf(a.stdout, "%s: ok (%d stages)\n", file, len(p.Stages))
			}
			if bad {
				return errReported
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "also warn as sluice lint does, and exit with status 1 on a warning")
	return cmd
}
