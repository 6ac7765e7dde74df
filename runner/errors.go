package runner

import "errors"

// ErrInvalidOption is wrapped by the errors of [Run] for options that do
// not fit the pipeline, such as a stage in Options.Stages that it lacks.
var ErrInvalidOption = errors.New("sluice: invalid runner option")
