package runner_test

import (
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// Tests that leave Options.Registry nil run on stages.Default, which a
// program fills itself: here with the built-in types.
func init() {
	if err := builtin.Register(stages.Default); err != nil {
		panic(err)
	}
}
