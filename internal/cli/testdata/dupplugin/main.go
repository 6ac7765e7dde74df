// Command dupplugin is a Go plugin for the tests: it registers a
// transform named "map", which sluice has built in.
package main

import (
	"context"

	"github.com/sluicehq/sluice/stages"
)

func init() {
	stages.MustRegister(stages.Spec{
		Name:    "map",
		Summary: "A second map",
		Doc:     "Clashes with the built-in map.",
		NewTransform: func(stages.Params, stages.Info) (stages.Transform, error) {
			return nop{}, nil
		},
	})
}

func main() {}

type nop struct{}

func (nop) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	return append(out, in), nil
}
func (nop) Close(context.Context) error { return nil }
