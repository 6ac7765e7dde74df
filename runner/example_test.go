package runner_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// A Go program runs a pipeline on a NATS server inside the process: it
// registers its own types, builds the pipeline in code (or loads a YAML
// file with pipeline.Load), and runs it to the end. With a cluster, it
// connects with nats.Connect instead of starting a server.
func Example_run() {
	store, err := os.MkdirTemp("", "sluice-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(store)
	srv, err := server.Start(server.Options{StoreDir: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	reg := builtin.NewRegistry()
	if err := reg.Register(stages.Spec{
		Name:    "shout",
		Summary: "Upper-cases the word field",
		Doc:     "A record without a word is a dead letter.",
		NewTransform: func(stages.Params, stages.Info) (stages.Transform, error) {
			return shout{}, nil
		},
	}); err != nil {
		fmt.Println(err)
		return
	}
	p, err := pipeline.Build(pipeline.Config{
		Name: "words",
		Stages: []pipeline.StageConfig{
			{Name: "read", Source: "generate", With: map[string]any{
				"count": 4, "template": `seq == 2 ? {"n": seq} : {"word": ["a", "bb", "ccc", "dddd"][seq]}`,
			}},
			{Name: "shout", Transform: "shout"},
			{Name: "print", Sink: "stdout"},
		},
	}, pipeline.Options{Registry: reg})
	if err != nil {
		fmt.Println(err)
		return
	}
	sum, err := runner.Run(context.Background(), nc, p, runner.Options{Registry: reg, Stdout: os.Stdout})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range sum.Stages {
		fmt.Printf("%s: in %d, out %d, dead letters %d\n", s.Name, s.In, s.Out, s.DeadLetters)
	}
	// Output:
	// {"word":"A"}
	// {"word":"BB"}
	// {"word":"DDDD"}
	// read: in 4, out 4, dead letters 0
	// shout: in 4, out 3, dead letters 1
	// print: in 3, out 3, dead letters 0
}

type shout struct{}

func (shout) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record()
	if err != nil {
		return out, err
	}
	word, ok := rec["word"].(string)
	if !ok {
		return out, stages.Permanent(fmt.Errorf("word: want a string, got %v", rec["word"]))
	}
	rec["word"] = strings.ToUpper(word)
	in.SetValue(rec)
	return append(out, in), nil
}

func (shout) Close(context.Context) error { return nil }
