// Package tracingtest runs, for tests, an in-process OTLP/HTTP receiver:
// a real HTTP server that decodes the trace export requests an OTLP
// exporter posts and keeps their spans.
package tracingtest
