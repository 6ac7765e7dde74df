//go:build core

package main

import (
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/core"
)

// newRegistry returns a registry with the core stage types alone, which
// are all this example's pipeline uses besides its own.
func newRegistry() *stages.Registry {
	r := stages.NewRegistry()
	if err := core.Register(r); err != nil {
		panic(err) // a built-in spec is wrong: a bug caught by every test
	}
	return r
}
