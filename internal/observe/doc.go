// Package observe serves what a sluice process shows of itself over HTTP:
// /metrics in the Prometheus text format (each stage's counts, read from
// the runner at scrape time, and its consumers' backlog, asked of the
// server at scrape time; plus the Go runtime and process collectors),
// /healthz (the process is alive), /readyz (every pipeline of the
// process has its stages running), and a status page at / (one embedded
// HTML file that draws the pipelines' graphs with live counts) with its
// data at /api/status (a JSON [Snapshot]).
//
// It adds nothing to the runner's hot path: the counters are the ones the
// runner keeps anyway, read through [runner.Job] when Prometheus scrapes.
package observe
