// Command sluice runs, validates and inspects sluice pipelines. Run
// "sluice --help" for the commands.
package main

import (
	"os"

	"github.com/sluicehq/sluice/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
