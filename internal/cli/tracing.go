package cli

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluicehq/sluice/configs"
	"github.com/sluicehq/sluice/internal/tracing"
	"github.com/sluicehq/sluice/pipeline"
)

// tracingFlags gives cmd (run, worker) --otlp-endpoint and
// --trace-sample-ratio. The returned func binds them to the settings; call
// it when the command runs: viper keeps one flag per key, and two
// commands have them.
func (a *app) tracingFlags(cmd *cobra.Command) (bind func()) {
	f := cmd.Flags()
	f.String("otlp-endpoint", "", "trace records: export spans over OTLP/HTTP to this base URL, such as http://localhost:4318 (setting otlp_endpoint, SLUICE_OTLP_ENDPOINT; default: no tracing)")
	f.Float64("trace-sample-ratio", configs.DefaultTraceSampleRatio, "the share of source records traced, 0 to 1 (setting trace_sample_ratio)")
	return func() {
		a.bind("otlp_endpoint", f.Lookup("otlp-endpoint"))
		a.bind("trace_sample_ratio", f.Lookup("trace-sample-ratio"))
	}
}

// startTracing starts exporting spans over OTLP when otlp_endpoint (or
// OTEL_EXPORTER_OTLP_ENDPOINT) is set, for a process that runs ps (none
// known yet for a worker) as worker. It returns the tracer provider for
// the runner, nil when tracing is off, and a function that exports what
// is still buffered, within tracing.DefaultShutdownTimeout, and stops;
// the caller calls it once the runs have ended.
func (a *app) startTracing(ctx context.Context, ps []*pipeline.Pipeline, worker string) (trace.TracerProvider, func(), error) {
	s := a.settings
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		names = append(names, p.Name)
	}
	tp, err := tracing.Start(ctx, tracing.Config{
		Endpoint:    s.OTLPEndpoint,
		SampleRatio: s.TraceSampleRatio,
		Version:     mainVersion(),
		Pipelines:   names,
		Worker:      worker,
	})
	if err != nil {
		return nil, nil, failure(fmt.Errorf("tracing: %w", err))
	}
	if tp == nil {
		return nil, func() {}, nil
	}
	// What the exporter cannot send (the receiver down) is logged, not
	// printed by OpenTelemetry's default handler; the spans are dropped.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		a.log.Warn("tracing: spans not exported", "err", err)
	}))
	a.log.Info("tracing on", "sample_ratio", s.TraceSampleRatio)
	return tp.TracerProvider(), func() {
		if err := tp.Shutdown(context.WithoutCancel(ctx)); err != nil {
			a.log.Warn("tracing: spans not flushed at shutdown", "err", err)
		}
	}, nil
}

// mainVersion returns the main module's version, "(devel)" when the build
// does not record one.
func mainVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
