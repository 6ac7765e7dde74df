package tracing

import "errors"

// ErrInvalidConfig is wrapped by the error [Start] returns for a
// [Config] that cannot work: an endpoint that is not an http:// or
// https:// URL, a sample ratio outside 0..1.
var ErrInvalidConfig = errors.New("tracing: invalid config")
