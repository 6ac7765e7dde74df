package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
)

// httpFlags gives cmd (run, worker, server) the flags of its HTTP
// endpoint: --http, --http-token, --http-tls-cert and --http-tls-key. The
// returned func binds them to the settings; call it when the command runs:
// viper keeps one flag per key, and three commands have them.
func (a *app) httpFlags(cmd *cobra.Command, serves string) (bind func()) {
	f := cmd.Flags()
	f.String("http", "", "serve "+serves+" on PORT or :PORT (loopback) or HOST:PORT; beyond loopback it needs http_token (SLUICE_HTTP_TOKEN) or --insecure (default: none)")
	f.String("http-token", "", "the bearer token /metrics and /api/status require; open the status page as /#token=TOKEN (better: SLUICE_HTTP_TOKEN, kept out of the process list)")
	f.String("http-tls-cert", "", "PEM certificate to serve --http over HTTPS with (setting http_tls_cert)")
	f.String("http-tls-key", "", "PEM private key of --http-tls-cert (setting http_tls_key)")
	return func() {
		for key, flag := range map[string]string{"http": "http", "http_token": "http-token", "http_tls_cert": "http-tls-cert", "http_tls_key": "http-tls-key"} {
			a.bind(key, f.Lookup(flag))
		}
	}
}

// pipelineNames returns the names of ps.
func pipelineNames(ps []*pipeline.Pipeline) []string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names
}

// workerHTTP serves the worker's /metrics, /healthz and /readyz when the
// settings give an HTTP address, and has wo tell it about the worker's
// pipelines. The returned func stops serving.
func (a *app) workerHTTP(ctx context.Context, wo *cluster.WorkerOptions) (stop func(), err error) {
	id := wo.ID
	if id == "" {
		id = runner.DefaultWorkerID()
	}
	obs, err := a.listenHTTP(nil, id, false)
	if err != nil || obs == nil {
		return func() {}, err
	}
	wo.Observer, wo.Started, wo.Stopped = obs.Observer(), obs.Started, obs.Stopped
	return a.serveHTTP(ctx, obs), nil
}
