package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"
)

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of sluice, Go and the embedded nats-server, and the commit sluice was built from",
		Long: `Version prints the version of the sluice module, of Go and of the embedded
nats-server and, on a second line, the version-control revision sluice was
built from, when the build recorded one (go build in a git checkout does): its
commit, the commit's time, and "modified" if the checkout had uncommitted
changes. "sluice --version" prints the same.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(a.stdout, versionString())
			return failure(err)
		},
	}
}

// versionString returns the version text of this binary (see
// [versionText]).
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return versionText(bi)
}

// versionText returns "sluice <version> (<go version>, nats-server
// <version>)" and, when bi records the revision of the build, a second
// line "revision <commit> (<time>[, modified])". The sluice version is
// the main module's, or "(devel)" when bi (which may be nil) has none.
func versionText(bi *debug.BuildInfo) string {
	version := "(devel)"
	var rev, at string
	modified := false
	if bi != nil {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	text := fmt.Sprintf("sluice %s (%s, nats-server %s)", version, runtime.Version(), server.VERSION)
	if rev == "" {
		return text
	}
	var about []string
	if at != "" {
		about = append(about, at)
	}
	if modified {
		about = append(about, "modified")
	}
	text += "\nrevision " + rev
	if len(about) > 0 {
		text += " (" + strings.Join(about, ", ") + ")"
	}
	return text
}
