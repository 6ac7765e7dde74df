// Package observe serves what a sluice process shows of itself over HTTP
// (or HTTPS): /metrics in the Prometheus text format, /healthz (the
// process is alive), /readyz (every pipeline of the process has its
// stages running, and an embedded NATS server watched has JetStream
// ready), and a status page at / (one embedded HTML file that draws the
// pipelines' graphs with live counts) with its data at /api/status (a
// JSON [Snapshot]).
//
// /metrics has each stage's counts, read from the runner at scrape time,
// and its consumers' backlog, asked of the server at scrape time; the
// per-batch histograms and counters the runner feeds through the
// [runner.Observer] that [Server.Observer] returns; the embedded server's
// JetStream figures ([Server.WatchNATS]); and the Go runtime and process
// collectors. On a cluster worker every stage metric has the label
// worker.
//
// The counts cost the runner's hot path nothing: they are the ones it
// keeps anyway. The Observer is called once per batch, never per record.
package observe
