// Package observe serves what a sluice process shows of itself over HTTP:
// /metrics in the Prometheus text format (each stage's counts, read from
// the runner at scrape time, and its consumers' backlog, asked of the
// server at scrape time; plus the Go runtime and process collectors),
// /healthz (the process is alive) and /readyz (every pipeline of the
// process has its stages running).
//
// It adds nothing to the runner's hot path: the counters are the ones the
// runner keeps anyway, read through [runner.Job] when Prometheus scrapes.
package observe
