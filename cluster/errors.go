package cluster

import (
	"errors"

	"github.com/sluicehq/sluice/runner"
)

// ErrNotDeployed is returned for a pipeline that is not deployed.
var ErrNotDeployed = errors.New("pipeline not deployed")

// ErrInvalidOption is wrapped by the errors of [RunWorker] for options it
// cannot take, such as a worker ID that is not a valid key. It is the
// runner's own, so that one test covers both.
var ErrInvalidOption = runner.ErrInvalidOption
