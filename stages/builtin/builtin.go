// Package builtin bundles every family of built-in stage types: core,
// file, http, nats, jq, exec, state, window and sql (packages under
// stages/). A program that wants fewer types, and a smaller binary,
// registers only the families it needs.
package builtin

import (
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/core"
	"github.com/sluicehq/sluice/stages/exec"
	"github.com/sluicehq/sluice/stages/file"
	"github.com/sluicehq/sluice/stages/http"
	"github.com/sluicehq/sluice/stages/jq"
	"github.com/sluicehq/sluice/stages/nats"
	"github.com/sluicehq/sluice/stages/sql"
	"github.com/sluicehq/sluice/stages/state"
	"github.com/sluicehq/sluice/stages/window"
)

// families lists the Register functions of the families, in the order
// their first type comes in the reference.
var families = []func(*stages.Registry) error{
	core.Register,
	file.Register,
	http.Register,
	nats.Register,
	jq.Register,
	exec.Register,
	state.Register,
	window.Register,
	sql.Register,
}

// Register adds every built-in stage type to r, such as
// builtin.Register(stages.Default) at the start of a program that runs
// pipelines with the default registry.
func Register(r *stages.Registry) error {
	for _, register := range families {
		if err := register(r); err != nil {
			return err
		}
	}
	return nil
}

// NewRegistry returns a fresh registry holding every built-in type.
func NewRegistry() *stages.Registry {
	r := stages.NewRegistry()
	if err := Register(r); err != nil {
		panic(err) // a built-in spec is wrong: a bug caught by every test
	}
	return r
}
