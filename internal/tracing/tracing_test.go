package tracing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/tracing"
	"github.com/sluicehq/sluice/internal/tracing/tracingtest"
)

// clearOTELEnv unsets the OTEL_* variables Start reads, for the test.
func clearOTELEnv(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
}

func TestStartOffWithoutEndpoint(t *testing.T) {
	clearOTELEnv(t)
	p, err := tracing.Start(context.Background(), tracing.Config{SampleRatio: 1})
	if err != nil || p != nil {
		t.Fatalf("Start without endpoint = %v, %v; want nil, nil", p, err)
	}
	if tp := p.TracerProvider(); tp != nil {
		t.Fatalf("TracerProvider of nil = %v, want nil", tp)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStartInvalid(t *testing.T) {
	clearOTELEnv(t)
	for _, tc := range []struct {
		name string
		cfg  tracing.Config
	}{
		{"no scheme", tracing.Config{Endpoint: "localhost:4318"}},
		{"ftp", tracing.Config{Endpoint: "ftp://localhost:4318"}},
		{"ratio", tracing.Config{Endpoint: "http://localhost:4318", SampleRatio: 1.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tracing.Start(context.Background(), tc.cfg); !errors.Is(err, tracing.ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:4318":       "http://localhost:4318/v1/traces",
		"http://localhost:4318/":      "http://localhost:4318/v1/traces",
		"https://otel.example/otlp":   "https://otel.example/otlp/v1/traces",
		"https://otel.example/otlp/ ": "https://otel.example/otlp/v1/traces",
	} {
		got, err := tracing.EndpointURL(in)
		if err != nil || got != want {
			t.Errorf("EndpointURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestStartExports: a span ends up at the receiver, with the resource,
// once Shutdown has flushed.
func TestStartExports(t *testing.T) {
	clearOTELEnv(t)
	recv := tracingtest.Start(t)
	p, err := tracing.Start(context.Background(), tracing.Config{Endpoint: recv.Endpoint(), SampleRatio: 1, Version: "v9", Pipelines: []string{"orders"}, Worker: "w1"})
	if err != nil || p == nil {
		t.Fatalf("Start = %v, %v", p, err)
	}
	_, span := p.TracerProvider().Tracer("test").Start(context.Background(), "one")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	natstest.WaitFor(t, 5*time.Second, "the span at the receiver", func() bool { return len(recv.Spans()) == 1 })
	s := recv.Spans()[0]
	if s.Name != "one" || s.Resource["service.name"] != "sluice" || s.Resource["service.version"] != "v9" || s.Resource["sluice.worker"] != "w1" {
		t.Fatalf("span = %+v", s)
	}
}

// TestStartRatioZero: with ratio 0 a root span is not exported.
func TestStartRatioZero(t *testing.T) {
	clearOTELEnv(t)
	recv := tracingtest.Start(t)
	p, err := tracing.Start(context.Background(), tracing.Config{Endpoint: recv.Endpoint(), SampleRatio: 0})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.TracerProvider().Tracer("test").Start(context.Background(), "one")
	if span.SpanContext().IsSampled() {
		t.Fatal("a root span sampled with ratio 0")
	}
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(recv.Spans()); n != 0 {
		t.Fatalf("%d spans exported", n)
	}
}
