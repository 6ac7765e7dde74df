package pipetest

import "errors"

// ErrNoTests is wrapped by the error of [Find] when the arguments name no
// test file.
var ErrNoTests = errors.New("sluice: no test files")

// ErrTimeout is wrapped by the error of a case whose run did not finish
// within [Options.Timeout].
var ErrTimeout = errors.New("sluice: test case did not finish in time")
