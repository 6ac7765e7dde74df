// Package tracing sets up OpenTelemetry tracing for a sluice process: a
// tracer provider that samples with ParentBased(TraceIDRatioBased) and
// exports spans over OTLP/HTTP, with the W3C trace-context propagator and
// a resource naming the service "sluice". The runner takes the provider
// (runner.Options.Tracer) and makes the spans; this package only builds,
// and at shutdown flushes, what exports them.
package tracing
