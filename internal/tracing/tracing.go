package tracing

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ServiceName is the service.name of the resource, unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
const ServiceName = "sluice"

// DefaultShutdownTimeout bounds [Provider.Shutdown] when its context has
// no deadline: spans not exported by then are lost.
const DefaultShutdownTimeout = 5 * time.Second

// tracesPath is appended to the path of Config.Endpoint, as the OTLP
// exporter specification says for OTEL_EXPORTER_OTLP_ENDPOINT.
const tracesPath = "v1/traces"

// Resource attribute keys of sluice's own.
const (
	// AttrPipelines lists the pipelines the process runs, when known.
	AttrPipelines = attribute.Key("sluice.pipelines")
	// AttrWorker is the worker ID of the process.
	AttrWorker = attribute.Key("sluice.worker")
)

// Config says where spans go and how many are kept.
type Config struct {
	// Endpoint is the base URL of an OTLP/HTTP receiver, such as
	// http://localhost:4318: spans are posted to its path followed by
	// /v1/traces. Empty means the OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
	// OTEL_EXPORTER_OTLP_ENDPOINT environment variable, if set, else no
	// tracing. The exporter's other OTEL_EXPORTER_OTLP_* variables
	// (headers, timeout, compression, certificates) apply in any case.
	Endpoint string
	// SampleRatio is the share of the records that begin a trace at a
	// source whose trace is kept, 0 to 1. A record that arrives with a
	// trace context keeps its sampling decision. OTEL_TRACES_SAMPLER, if
	// set, wins over it.
	SampleRatio float64
	// Version is the service.version of the resource; empty leaves it out.
	Version string
	// Pipelines and Worker describe the process in the resource.
	Pipelines []string
	Worker    string
}

// Enabled reports whether c leads [Start] to export spans: an endpoint is
// set, here or in the environment, and OTEL_SDK_DISABLED is not true.
func (c Config) Enabled() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	return c.Endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// Provider is a tracer provider that exports over OTLP/HTTP. It is safe
// for concurrent use.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Start returns a Provider for c, or nil and no error when c is not
// [Config.Enabled]: tracing off. Spans are exported in batches in the
// background, and dropped rather than waited for when the receiver is
// slow or down; the caller must call [Provider.Shutdown].
func Start(ctx context.Context, c Config) (*Provider, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return nil, fmt.Errorf("%w: sample ratio must be between 0 and 1 (got %g)", ErrInvalidConfig, c.SampleRatio)
	}
	var opts []otlptracehttp.Option
	if c.Endpoint != "" {
		u, err := EndpointURL(c.Endpoint)
		if err != nil {
			return nil, err
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", ServiceName)}
	if c.Version != "" {
		attrs = append(attrs, attribute.String("service.version", c.Version))
	}
	if c.Worker != "" {
		attrs = append(attrs, AttrWorker.String(c.Worker), attribute.String("service.instance.id", c.Worker))
	}
	if len(c.Pipelines) > 0 {
		attrs = append(attrs, AttrPipelines.StringSlice(c.Pipelines))
	}
	// The environment (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) wins
	// over sluice's own attributes.
	res, err := resource.Merge(resource.NewSchemaless(attrs...), resource.Environment())
	if err != nil {
		res = resource.NewSchemaless(attrs...) // a malformed variable: sluice's own attributes still hold
	}
	popts := []sdktrace.TracerProviderOption{
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
	}
	if os.Getenv("OTEL_TRACES_SAMPLER") == "" {
		popts = append(popts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))))
	}
	return &Provider{tp: sdktrace.NewTracerProvider(popts...)}, nil
}

// EndpointURL returns the URL spans are posted to for the base URL
// endpoint: its path followed by /v1/traces. It fails, wrapping
// [ErrInvalidConfig], for what is not an http:// or https:// URL with a
// host.
func EndpointURL(endpoint string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: OTLP endpoint must be an http:// or https:// URL such as http://localhost:4318 (got %q)", ErrInvalidConfig, redact(endpoint))
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + tracesPath
	return u.String(), nil
}

// redact removes the password of a URL, for an error message.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// TracerProvider returns the provider the runner makes its tracers with;
// nil (tracing off) for a nil p.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return nil
	}
	return p.tp
}

// Shutdown exports the spans still buffered and stops the provider,
// within ctx's deadline or [DefaultShutdownTimeout]: what is not exported
// by then is dropped. A nil p does nothing.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultShutdownTimeout)
		defer cancel()
	}
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flush spans: %w", err)
	}
	return nil
}
