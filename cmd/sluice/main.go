// Command sluice runs, validates and inspects sluice pipelines. Run
// "sluice --help" for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluicehq/sluice/internal/cli"
)

func main() {
	args := os.Args[1:]
	ctx, stop := context.Background(), func() {}
	if cli.StopsCleanly(args) {
		// A signal from the first instant stops a command that runs
		// until stopped (run, worker, server) cleanly, even one that
		// comes while it is still starting; a second one kills. Any
		// other command keeps the default: the first signal ends it.
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		context.AfterFunc(ctx, stop)
	}
	code := cli.MainContext(ctx, args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
