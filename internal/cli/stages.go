package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/stages"
)

func (a *app) stagesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stages [TYPE]",
		Short: "List the stage types, or show one type and its parameters",
		Long: `Without TYPE, stages lists every stage type by role with a one-line summary.
With TYPE, it shows the type's documentation and parameters; a name used by
several roles (the source file and the sink file) shows each of them.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return failure(writeStageList(a.stdout, a.reg.Specs()))
			}
			specs, err := a.reg.Lookup(args[0])
			if errors.Is(err, stages.ErrUnknownType) {
				return fmt.Errorf("unknown stage type %q (known: %s)", args[0], strings.Join(typeNames(a.reg), ", "))
			}
			if err != nil {
				return err
			}
			for i, spec := range specs {
				if i > 0 {
					fmt.Fprintln(a.stdout)
				}
				if err := writeStageSpec(a.stdout, spec); err != nil {
					return failure(err)
				}
			}
			return nil
		},
	}
}

// typeNames returns every type name once, sorted.
func typeNames(reg *stages.Registry) []string {
	var names []string
	for _, s := range reg.Specs() {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// writeStageList writes the types grouped by role, each with its summary.
// specs are sorted by role, as Registry.Specs returns them.
func writeStageList(w io.Writer, specs []*stages.Spec) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, role := range stages.Roles {
		fmt.Fprintf(tw, "%ss:\n", role)
		for _, s := range specs {
			if s.Role() == role {
				fmt.Fprintf(tw, "  %s\t%s\n", s.Name, s.Summary)
			}
		}
		if role != stages.RoleSink {
			fmt.Fprintln(tw)
		}
	}
	return tw.Flush()
}

// writeStageSpec writes the name, role, summary, documentation and a table
// of the parameters of one type.
func writeStageSpec(w io.Writer, s *stages.Spec) error {
	fmt.Fprintf(w, "%s %s: %s\n", s.Role(), s.Name, s.Summary)
	if doc := strings.TrimSpace(s.Doc); doc != "" {
		fmt.Fprintf(w, "\n%s\n", doc)
	}
	if len(s.Params) == 0 {
		_, err := fmt.Fprintln(w, "\nparameters: none")
		return err
	}
	fmt.Fprintln(w, "\nparameters:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  name\ttype\trequired\tdefault\tenum\tdoc")
	for _, p := range s.Params {
		required := "no"
		if p.Required {
			required = "yes"
		}
		enum := "-"
		if len(p.Enum) > 0 {
			enum = strings.Join(p.Enum, "|")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Type, required, formatDefault(p.Default), enum, p.Doc)
	}
	return tw.Flush()
}

// formatDefault shows a parameter default as it would be written in YAML;
// "-" means none.
func formatDefault(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" || strings.TrimSpace(x) != x {
			return strconv.Quote(x)
		}
		return x
	case time.Duration:
		return x.String()
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	}
	return fmt.Sprint(v)
}
