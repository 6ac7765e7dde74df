package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/internal/bearer"
	"github.com/sluicehq/sluice/runner"
)

// Options configure a [Server].
type Options struct {
	// Addr is where to listen, as [CheckAddr] returns it.
	Addr string
	// Token, if set, is the bearer token /metrics and /api/status require
	// ("Authorization: Bearer TOKEN", compared in constant time).
	// /healthz and /readyz stay open: probes seldom carry credentials, and
	// they tell no more than pipeline names.
	Token string
	// Pipelines names the pipelines the process is to run: /readyz answers
	// 200 once each has started, and until one stops.
	Pipelines []string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Worker, if set, names the cluster worker this process is: every
	// stage metric gets the label worker, and the pipelines come and go
	// with the deployments (see [Server.Started], [Server.Stopped]).
	Worker string
	// TLSCert and TLSKey, if set, are the PEM files of the certificate
	// and private key to serve HTTPS with.
	TLSCert, TLSKey string
	// WaitNATS makes /readyz wait for the process's embedded NATS server,
	// which [Server.WatchNATS] gives once it has started.
	WaitNATS bool
}

// readHeaderTimeout bounds reading a request's headers.
const readHeaderTimeout = 5 * time.Second

// Server serves /metrics, /healthz, /readyz, the status page at / and its
// data at /api/status. Tell it what runs with
// [Server.Started] and [Server.Stopped]. Safe for concurrent use.
type Server struct {
	ln    net.Listener
	srv   *http.Server
	jobs  *jobs
	token bearer.Token // nil without one
	log   *slog.Logger

	metrics *metrics       // the runner's Observer
	nats    *natsCollector // the embedded server's figures
	// waitNATS: /readyz waits for an embedded server (Options.WaitNATS).
	waitNATS bool
}

// Listen listens on opts.Addr and returns the server, which serves once
// [Server.Serve] is called.
func Listen(opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	page, err := newStatusPage(indexHTML)
	if err != nil {
		return nil, err
	}
	ln, err := listen(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, jobs: newJobs(opts.Pipelines), log: log, nats: newNATSCollector()}
	s.jobs.dynamic = opts.Worker != ""
	s.waitNATS = opts.WaitNATS
	s.token = bearer.New(opts.Token)
	constLabels := workerLabel(opts.Worker)
	reg := newRegistry(&collector{jobs: s.jobs, log: log, d: newStageDescs(constLabels)}, s.nats)
	s.metrics = newMetrics(reg, constLabels)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.authorized(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogErrors{log}})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /api/status", s.authorized(http.HandlerFunc(s.status)))
	mux.Handle("GET /{$}", page)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx is done, then shuts the server down, giving
// requests in hand a moment to finish. It returns nil after a shutdown.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), readHeaderTimeout)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	})
	defer stop()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("observe: %w", err)
	}
	return nil
}

// Started tells that the stages of j run: its counts are served, and its
// pipeline is ready. Fit for [runner.Options].Started.
func (s *Server) Started(j *runner.Job) { s.jobs.started(j) }

// Stopped tells that the run of pipeline has ended in this process: its
// counts leave /metrics (the status page keeps the last ones), and
// /readyz answers 503.
func (s *Server) Stopped(pipeline string) { s.jobs.stopped(pipeline) }

// ready answers /readyz: 200 when every pipeline runs, else 503 with a
// line for each that does not.
func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if msg := s.natsNotReady() + s.jobs.notReady(); msg != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, msg)
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// authorized wraps h with the bearer token check, if there is a token.
func (s *Server) authorized(h http.Handler) http.Handler {
	if s.token == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.token.Allows(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// slogErrors passes promhttp's errors to the logger.
type slogErrors struct{ log *slog.Logger }

func (l slogErrors) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }
