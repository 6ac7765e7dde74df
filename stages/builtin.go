package stages

import (
	"errors"
	"fmt"
)

// builtins returns the specs of the built-in stage types.
func builtins() []Spec {
	return []Spec{
		// sources
		generateSpec(),
		fileSourceSpec(),
		stdinSpec(),
		httpSourceSpec(),
		natsSourceSpec(),
		jetstreamSourceSpec(),
		kvWatchSpec(),
		// transforms
		mapSpec(),
		filterSpec(),
		splitSpec(),
		jqSpec(),
		switchSpec(),
		templateSpec(),
		parseSpec(),
		delaySpec(),
		execSpec(),
		dedupeSpec(),
		rateLimitSpec(),
		windowSpec(),
		// sinks
		stdoutSpec(),
		fileSinkSpec(),
		discardSpec(),
		httpSinkSpec(),
		natsSinkSpec(),
		jetstreamSinkSpec(),
		kvSinkSpec(),
		sqlSinkSpec(),
	}
}

// paramError reports a bad value of one parameter the way [Param.Convert]
// does, located for validation.
func paramError(name, format string, a ...any) error {
	return &ParamError{Param: name, Err: fmt.Errorf("%w: %s: %s", ErrInvalidParam, name, fmt.Sprintf(format, a...))}
}

// errSourceClosed is returned by Read after Close.
var errSourceClosed = errors.New("source is closed")

// errSinkClosed is returned by Write after Close.
var errSinkClosed = errors.New("sink is closed")
