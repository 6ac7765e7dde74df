// Command embed is a Go program that embeds sluice: it registers its own
// transform type, "score", and runs a pipeline that uses it, built in Go
// or read from a YAML file, on a NATS server started inside the program
// or on a NATS cluster.
//
//	go run ./examples/embed                                   # built in Go, embedded server
//	go run ./examples/embed -f examples/embed/pipeline.yaml   # the same pipeline from YAML
//	go run ./examples/embed -nats nats://127.0.0.1:4222       # on a server or cluster
//	go build -tags core ./examples/embed                      # with the core stage types alone
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

// run parses the flags, builds the registry and the pipeline, and runs it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("embed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "pipeline YAML file (default: the pipeline built in Go)")
	natsURL := fs.String("nats", "", "NATS URL (default: a server inside this program)")
	store := fs.String("store", ".sluice-embed", "JetStream store of the server inside this program")
	if err := fs.Parse(args); err != nil {
		return err
	}

	// A registry of our own: the built-in types (all of them, or the core
	// family alone when built with -tags core, see registry_all.go) plus
	// ours. (A program may also add to stages.Default with
	// stages.Register.)
	reg := newRegistry()
	if err := reg.Register(scoreSpec()); err != nil {
		return err
	}

	var p *pipeline.Pipeline
	var err error
	if *file != "" {
		p, err = pipeline.Load(*file, pipeline.Options{Registry: reg})
	} else {
		p, err = pipeline.Build(orders(), pipeline.Options{Registry: reg})
	}
	if err != nil {
		return err
	}

	var nc *nats.Conn
	if *natsURL != "" {
		nc, err = nats.Connect(*natsURL)
	} else {
		var srv *server.Server
		srv, err = server.Start(server.Options{StoreDir: *store})
		if err != nil {
			return err
		}
		defer srv.Shutdown()
		nc, err = srv.Connect()
	}
	if err != nil {
		return err
	}
	defer nc.Close()

	sum, err := runner.Run(ctx, nc, p, runner.Options{
		Registry: reg,
		Stdout:   stdout,
		Logger:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Fresh:    true, // every start of this demo is a new run
	})
	if err != nil {
		return err
	}
	return errors.Join(sum.WriteTable(stderr), nc.Drain())
}

// orders is the pipeline, built in Go: the same as pipeline.yaml.
func orders() pipeline.Config {
	return pipeline.Config{
		Name:        "embed-orders",
		Description: "Orders scored by a transform written in Go; the risky ones printed",
		Stages: []pipeline.StageConfig{
			{Name: "orders", Source: "generate", With: map[string]any{
				"count":    8,
				"template": `{"id": seq, "amount": (seq * 37) % 250, "country": ["FR", "US", "NG", "JP"][seq % 4]}`,
			}},
			{Name: "score", Transform: "score", With: map[string]any{"risky_countries": []string{"NG"}}},
			{Name: "risky", Transform: "filter", With: map[string]any{"expr": "risk >= 0.5"}},
			{Name: "print", Sink: "stdout"},
		},
	}
}
