package server

import "errors"

// ErrNoAuth is returned by [Start] for a server that would accept
// clients or routes from beyond loopback without authentication, unless
// [Options.Insecure] allows it. The error names the address.
var ErrNoAuth = errors.New("sluice: server: no authentication beyond loopback")

// ErrConfig is wrapped by the errors of [Start] for an
// [Options.ConfigFile] that nats-server does not accept, or whose
// settings conflict with the Options. The error names the file.
var ErrConfig = errors.New("sluice: server: configuration")
