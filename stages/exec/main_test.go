package exec

import "github.com/sluicehq/sluice/stages/internal/stagetest"

// The stagetest helpers build the types of this package.
func init() { stagetest.Register = Register }
