package observe

import "errors"

// ErrNoAuth is returned by [CheckAddr] for an address beyond loopback
// without a bearer token, unless insecure is given: /metrics would be open
// to every host that reaches it.
var ErrNoAuth = errors.New("observe: an HTTP address beyond loopback needs a bearer token")

// ErrInvalidAddr is returned by [CheckAddr] for an address that is not
// PORT, :PORT or HOST:PORT.
var ErrInvalidAddr = errors.New("observe: invalid HTTP address")

// ErrTLS is returned by [Listen] for a certificate or key that cannot be
// loaded, or one given without the other.
var ErrTLS = errors.New("observe: TLS certificate")
