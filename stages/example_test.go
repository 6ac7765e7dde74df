package stages_test

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/stages"
)

// greet is a transform that adds a greeting to each record.
type greet struct{ greeting string }

func (g *greet) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	rec, err := in.Record() // a payload that is not a JSON object is a permanent error: a dead letter
	if err != nil {
		return out, err
	}
	rec["greeting"] = fmt.Sprintf("%s, %v", g.greeting, rec["name"])
	in.SetValue(rec)
	return append(out, in), nil
}

func (g *greet) Close(context.Context) error { return nil }

// A program registers its own stage type on a registry: its name, its
// documented parameters and a constructor. Validation converts and
// checks the parameters a pipeline gives; the runner builds one
// transform per worker.
func Example_register() {
	reg := stages.NewRegistry() // empty; builtin.NewRegistry() holds the built-in types, and stages.Default is the CLI's registry
	err := reg.Register(stages.Spec{
		Name:    "greet",
		Summary: "Adds a greeting to each record",
		Doc:     "The greeting field becomes the greeting followed by the record's name.",
		Params: []stages.Param{
			{Name: "greeting", Type: stages.TypeString, Default: "hello", Doc: "The word of greeting."},
		},
		NewTransform: func(p stages.Params, _ stages.Info) (stages.Transform, error) {
			return &greet{greeting: p.String("greeting")}, nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	spec, _ := reg.LookupRole(stages.RoleTransform, "greet")
	if _, errs := spec.ParseParams(map[string]any{"greting": "hi"}); len(errs) > 0 {
		fmt.Println(errs[0])
	}
	params, _ := spec.ParseParams(map[string]any{"greeting": "bonjour"})
	t, _ := spec.NewTransform(params, stages.Info{})
	defer t.Close(context.Background())
	outs, _ := t.Process(context.Background(), stages.NewMessage([]byte(`{"name": "Ada"}`)), nil)
	payload, _ := outs[0].Payload()
	fmt.Println(string(payload))
	// Output:
	// greting: sluice: invalid parameter: unknown parameter "greting" for transform "greet"
	// {"greeting":"bonjour, Ada","name":"Ada"}
}
