package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) graphCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph FILE",
		Short: "Print the stage graph of a pipeline as Mermaid or Graphviz DOT",
		Long: `Graph prints the stages of a pipeline and what each reads, as a Mermaid
flowchart (the default) or a Graphviz digraph (--format dot). The stages that
"sluice run" runs fused, as one step with no stream between them, are drawn
in a box labelled "fused", their edges thick; a cluster's workers run every
stage on its own.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("graph: want one pipeline file (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ps, err := a.loadPipelines(args, nil)
			if err != nil {
				return err
			}
			out, err := ps[0].Graph(format)
			if err != nil {
				// Not wrapped: the error already says "sluice: unknown graph
				// format", and a prefix before it would repeat "sluice:".
				return err
			}
			if !strings.HasSuffix(out, "\n") {
				out += "\n"
			}
			_, err = fmt.Fprint(a.stdout, out)
			return failure(err)
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "output format: mermaid or dot")
	return cmd
}
