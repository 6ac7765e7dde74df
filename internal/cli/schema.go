package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/pipeline"
)

func (a *app) schemaCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print a JSON Schema of pipeline files, for editors",
		Long: `Schema prints a JSON Schema (draft 2020-12) of pipeline files: the top-level
keys, the settings, and each stage as one of the stage types known to this
binary (with the --plugin types), its with mapping holding only that type's
parameters, each described by its documentation. Point an editor at it (see
docs/pipeline-yaml.md, Editor support) for completion and checks as you type.
The schema checks the shape of a file; "sluice validate" checks the rest (the
stage graph, expressions, what a type checks itself).

With -o FILE, it writes the schema to FILE instead of stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := pipeline.JSONSchema(a.reg)
			if err != nil {
				return failure(err)
			}
			if output != "" {
				if err := os.WriteFile(output, data, 0o644); err != nil {
					return failure(fmt.Errorf("schema: %w", err))
				}
				return nil
			}
			_, err = a.stdout.Write(data)
			return failure(err)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the schema to this file instead of stdout")
	return cmd
}
