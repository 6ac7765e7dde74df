// Package server starts a nats-server with JetStream inside the process:
// the embedded server of `sluice run` (no TCP listener unless asked, its
// store in .sluice/) and the standalone, clusterable server of
// `sluice server`. Clients in the process connect to it in-process.
package server
