package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"
)

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of sluice, Go and the embedded nats-server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(a.stdout, versionString())
			return failure(err)
		},
	}
}

// versionString returns "sluice <version> (<go version>, nats-server
// <version>)"; the sluice version is the main module's, or "(devel)" when
// the build does not record one.
func versionString() string {
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return fmt.Sprintf("sluice %s (%s, nats-server %s)", version, runtime.Version(), server.VERSION)
}
