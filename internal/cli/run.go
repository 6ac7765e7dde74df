package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configs"
	"github.com/sluicehq/sluice/internal/observe"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/server"
)

func (a *app) runCmd() *cobra.Command {
	var fresh, watch bool
	var only []string
	var bindHTTP, bindTracing func()
	cmd := &cobra.Command{
		Use:         "run FILE...",
		Annotations: map[string]string{longRunning: "true"},
		Short:       "Run pipelines until their sources finish or a signal stops them",
		Long: `Run validates the pipeline files and runs them all at once, each until its
bounded sources have finished and every stage has drained, or until SIGINT or
SIGTERM stops it cleanly (a second signal kills the process). A summary of
each run goes to stderr; stdout carries only what stdout sinks write.

Without --nats, run starts a NATS server with JetStream inside the process,
storing in --store-dir; --fresh starts over with an empty store.

A run that was interrupted (a signal, kill -9, a crash, a power loss) is
resumed by the next run of the pipeline: its sources continue from their
checkpoints and its stages process what their streams hold. --fresh with
--nats discards it instead. Running a pipeline whose last run finished starts
a new run that reads its sources from the beginning, unless dead letters of
that run were replayed ("sluice dlq replay"): then the finished run is
resumed for the replays alone, its sources do not read again, sinks add to
its output, and the summary says "replay of run N". --fresh discards the
replays instead (without --nats it removes the store, dead letters
included).

If a pipeline fails, the others are stopped too and the exit status is 1.

With --watch, run reads the pipeline files every 500ms and reloads a
pipeline whose file changed: a new version that validates replaces the
running one without losing or repeating a record (the old one stops as on
SIGTERM, the new one resumes its run); one that does not is reported,
FILE:LINE:COL per problem, and the old one keeps running. Renaming a
pipeline is refused. A run that finishes leaves the process watching
until SIGINT or SIGTERM; the next change begins a new run.`,
		Args: wantFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Bound when the command runs: worker has the flag too, and
			// viper keeps one flag per key.
			a.bind("shutdown_timeout", cmd.Flags().Lookup("shutdown-timeout"))
			bindHTTP()
			bindTracing()
			return a.run(cmd.Context(), args, fresh, watch, only)
		},
	}
	cmd.Flags().BoolVar(&fresh, "fresh", false, "remove the embedded server's store first, starting every pipeline over")
	cmd.Flags().BoolVar(&watch, "watch", false, "reload a pipeline when its file changes, and keep watching after the runs finish, until SIGINT or SIGTERM")
	cmd.Flags().StringSliceVar(&only, "stages", nil, "run only these stages (comma-separated) in this process; without a source it processes what their streams hold and ends")
	cmd.Flags().String("listen", "", "host:port where the embedded server accepts NATS clients, who authenticate with nats.user and nats.password or nats.token when they are set (default: none)")
	cmd.Flags().BoolVar(&a.insecure, "insecure", false, "let --listen beyond loopback accept clients without authentication, and --http beyond loopback serve without http_token")
	a.bind("listen", cmd.Flags().Lookup("listen"))
	a.progressFlags(cmd)
	bindHTTP = a.httpFlags(cmd, "/metrics (Prometheus), /healthz, /readyz and a status page at / (its data at /api/status)")
	bindTracing = a.tracingFlags(cmd)
	cmd.Flags().Duration("shutdown-timeout", 0, "how long a stop after SIGINT or SIGTERM may take before the process gives up and exits with status 1 (default 30s)")
	return cmd
}

func (a *app) run(ctx context.Context, files []string, fresh, watch bool, only []string) error {
	if err := a.loadSettings(); err != nil {
		return err
	}
	s := a.settings
	defer a.showProgress()() // first: what follows logs through it
	defer a.tuneMemory()()
	if err := a.checkListen(); err != nil {
		return err
	}
	if watch {
		if err := checkWatchable(files); err != nil {
			return err
		}
	}
	ps, err := a.loadPipelines(files, nil)
	if err != nil {
		return err
	}
	if err := uniqueNames(ps); err != nil {
		return err
	}
	tracer, stopTracing, err := a.startTracing(ctx, ps, s.WorkerID)
	if err != nil {
		return err
	}
	defer stopTracing() // after the runs: their last spans are exported
	if fresh && s.NATSURL == "" {
		// The embedded server removes it once it holds its lock.
		if err := checkStore(s.StoreDir); err != nil {
			return err
		}
		a.fresh = true
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // restore the default: a second signal kills
	obs, err := a.listenHTTP(pipelineNames(ps), "", s.NATSURL == "")
	if err != nil {
		return err
	}
	if obs != nil {
		defer a.serveHTTP(ctx, obs)()
		a.started = append(a.started, obs.Started)
		a.stopped = append(a.stopped, obs.Stopped)
	}

	conn, err := a.connect(ctx, true)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for the server
		}
		return failure(err)
	}
	if obs != nil && conn.emb != nil {
		obs.WatchNATS(conn.emb)
	}
	done := make(chan error, 1)
	opts := runner.Options{
		Registry:    a.reg,
		Logger:      a.log,
		Stdin:       a.stdin,
		Stdout:      a.stdout,
		Stages:      only,
		Fresh:       fresh && s.NATSURL != "",
		StopTimeout: s.ShutdownTimeout,
		Tracer:      tracer,
	}
	if obs != nil {
		opts.Observer = obs.Observer()
	}
	// The versions that run, which --watch changes; status, top and tap
	// reach the run through its endpoint.
	vs := newVersions(ps)
	if conn.emb != nil {
		stopStatus, err := a.serveRunStatus(conn.nc, vs.get)
		if err != nil {
			conn.close()
			return failure(err)
		}
		defer stopStatus()
	}
	var watched *versions // nil: no --watch
	if watch {
		watched = vs
	}
	go func() { done <- a.runAll(ctx, conn.nc, ps, opts, watched) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Stopped by a signal: the runs finish what they hold, within the
		// shutdown timeout (the runner bounds each part by it; this bounds
		// the whole, connection drain included).
		t := time.NewTimer(s.ShutdownTimeout)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			conn.nc.Close()
			if conn.emb != nil {
				conn.emb.Shutdown()
			}
			return failure(fmt.Errorf("not stopped within the shutdown timeout of %s: what was in flight will be delivered again on the next run", s.ShutdownTimeout))
		}
	}
	conn.close()
	return err
}

// runAll runs the pipelines concurrently and writes the summary of each to
// stderr as it ends. The first failure stops the other pipelines. With
// vs (run --watch), each pipeline is reloaded when its file changes, and
// vs holds the versions that run.
func (a *app) runAll(stop context.Context, nc *nats.Conn, ps []*pipeline.Pipeline, opts runner.Options, vs *versions) error {
	g, ctx := errgroup.WithContext(stop)
	var mu sync.Mutex // one summary table at a time
	started := func(j *runner.Job) {
		for _, f := range a.started {
			f(j)
		}
	}
	if len(a.started) > 0 {
		opts.Started = started
	}
	report := func(sum *runner.Summary) {
		if sum == nil {
			return
		}
		mu.Lock()
		_ = sum.WriteTable(a.stderr) // stderr failing leaves nowhere to tell
		mu.Unlock()
	}
	for _, p := range ps {
		if vs != nil {
			g.Go(func() error { return a.watchRun(ctx, nc, p, opts, vs, started, report) })
			continue
		}
		g.Go(func() error {
			sum, err := runner.Run(ctx, nc, p, opts)
			for _, f := range a.stopped {
				f(p.Name)
			}
			if sum == nil && stop.Err() != nil && errors.Is(err, context.Canceled) {
				// A signal while the run was being set up.
				a.log.Info("stopped before the run started", "pipeline", p.Name)
				return nil
			}
			report(sum)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		if errors.Is(err, runner.ErrInvalidOption) {
			return &exitError{code: ExitUsage, err: err}
		}
		return failure(err)
	}
	return nil
}

// uniqueNames rejects two files naming the same pipeline: they would share
// streams on NATS.
func uniqueNames(ps []*pipeline.Pipeline) error {
	seen := make(map[string]string, len(ps))
	for _, p := range ps {
		if other, ok := seen[p.Name]; ok {
			return fmt.Errorf("%s and %s both name pipeline %q", other, p.File, p.Name)
		}
		seen[p.Name] = p.File
	}
	return nil
}

// checkStore refuses, for --fresh, a store directory that holds anything
// but a sluice store: a JetStream directory and the store's lock file.
func checkStore(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--fresh: %w", err)
	}
	for _, e := range entries {
		if !isStoreFile(e.Name()) {
			return fmt.Errorf("--fresh: refusing to remove store directory %s: it holds %q, which is not part of a sluice store", dir, e.Name())
		}
	}
	return nil
}

// conn is the NATS connection of a run and, without a NATS URL, the
// embedded server behind it.
type conn struct {
	nc     *nats.Conn
	emb    *server.Server   // nil with a NATS URL
	local  *server.Endpoint // the endpoint of the run it connected through, nil if none
	closed chan struct{}    // closed when nc is
	// denied, when set, is called with the server's refusal of a
	// request for want of a permission.
	denied atomic.Pointer[context.CancelCauseFunc]
}

// checkListen refuses --listen with a NATS URL: it is for the embedded
// server.
func (a *app) checkListen() error {
	if a.settings.NATSURL != "" && a.settings.Listen != "" {
		return errors.New("--listen is for the embedded server: it cannot be used with --nats or SLUICE_NATS_URL")
	}
	return nil
}

// connect connects to the NATS URL of the settings, or starts the embedded
// server and connects to it in-process. A patient connect, for the
// long-running commands (worker, run --nats), waits for a server that is
// not there yet, trying again every configs.ReconnectWait and logging each
// attempt, until ctx is done; the others fail at once.
func (a *app) connect(ctx context.Context, patient bool) (*conn, error) {
	s := a.settings
	c := &conn{closed: make(chan struct{})}
	opts := []nats.Option{
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }),
		// Asynchronous errors go to the log, not to nats.go's default
		// printing on stderr. A permission violation names the subject,
		// never a secret.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) && (strings.Contains(err.Error(), strconv.Quote(schema.UserInfoSubject)) ||
				strings.Contains(err.Error(), strconv.Quote(schema.RunStatusSubject))) {
				// Deploy asks who it is, status on a cluster for a run's
				// status, and both do without the answer.
				// nats.go says which subject was refused only in the text.
				a.log.Debug("NATS refused a request; going on without it", "err", err)
				return
			}
			if errors.Is(err, nats.ErrPermissionViolation) {
				a.log.Error("NATS refused a request: the user lacks the permission", "err", err)
				if denied := c.denied.Load(); denied != nil {
					(*denied)(err)
				}
				return
			}
			a.log.Warn("NATS error", "err", err)
		}),
	}
	if s.NATSURL != "" {
		auth, err := s.NATSOptions()
		if err != nil {
			return nil, err
		}
		opts = append(opts, auth...)
		opts = append(opts,
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil { // nil: closed on purpose
					a.log.Warn("disconnected from NATS", "err", err)
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				a.log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
			}),
		)
		connected := make(chan struct{})
		if patient {
			var once sync.Once
			opts = append(opts,
				nats.RetryOnFailedConnect(true),
				nats.ConnectHandler(func(*nats.Conn) { once.Do(func() { close(connected) }) }),
				nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
					a.log.Warn("cannot reach NATS, trying again", "err", err, "in", configs.ReconnectWait.String())
				}),
			)
		}
		nc, err := nats.Connect(s.NATSURL, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to NATS: %w", err)
		}
		if !nc.IsConnected() {
			a.log.Warn("cannot reach NATS, trying again", "in", configs.ReconnectWait.String())
			select {
			case <-connected:
			case <-c.closed: // given up: refused credentials, say
				return nil, fmt.Errorf("connect to NATS: %w", nc.LastError())
			case <-ctx.Done():
				nc.Close()
				return nil, fmt.Errorf("connect to NATS: %w", context.Cause(ctx))
			}
		}
		a.log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
		c.nc = nc
		return c, nil
	}

	// The long-running command (run) serves an endpoint on its store; the
	// others connect through the endpoint of the run that holds it.
	var stale error
	if !patient {
		ok, why, err := a.dialEndpoint(c, opts)
		if err != nil {
			return nil, err
		}
		if ok {
			return c, nil
		}
		stale = why
	}
	interval, always, _ := s.SyncOptions() // validated with the settings
	emb, err := server.Start(server.Options{Endpoint: patient,
		StoreDir: s.StoreDir, Listen: s.Listen, SyncAlways: always, SyncInterval: interval, Fresh: a.fresh,
		// Clients of the listener authenticate as the settings say this
		// process does; so does its own in-process connection.
		User: s.NATS.User, Password: s.NATS.Password, Token: s.NATS.Token,
		Insecure: a.insecure,
	})
	if err != nil {
		if errors.Is(err, server.ErrStoreInUse) && stale != nil {
			return nil, fmt.Errorf("%w; its endpoint cannot be reached: %w", err, stale)
		}
		if errors.Is(err, server.ErrNoAuth) {
			return nil, &exitError{code: ExitUsage, err: fmt.Errorf("%w; for --listen beyond loopback set nats.user and nats.password (SLUICE_NATS_USER, SLUICE_NATS_PASSWORD) or nats.token (SLUICE_NATS_TOKEN), or, to accept that, give --insecure", err)}
		}
		return nil, err
	}
	if a.fresh {
		a.log.Info("store removed", "dir", s.StoreDir)
	}
	switch {
	case s.NATS.Token != "":
		opts = append(opts, nats.Token(s.NATS.Token))
	case s.NATS.User != "":
		opts = append(opts, nats.UserInfo(s.NATS.User, s.NATS.Password))
	}
	nc, err := emb.Connect(opts...)
	if err != nil {
		emb.Shutdown()
		return nil, err
	}
	c.nc, c.emb = nc, emb
	a.log.Info("embedded NATS server started", "store", s.StoreDir)
	if url := emb.ClientURL(); url != "" {
		a.log.Info("embedded NATS server listening", "url", url)
		for _, open := range emb.Unauthenticated() {
			a.log.Warn("--insecure: the embedded NATS server: " + open)
		}
	}
	return c, nil
}

// close drains the connection, waits until it is closed, and stops the
// embedded server.
func (c *conn) close() {
	if err := c.nc.Drain(); err != nil {
		c.nc.Close()
	}
	<-c.closed // nats.go closes a draining connection after its DrainTimeout at the latest
	if c.emb != nil {
		c.emb.Shutdown()
	}
}

// listenHTTP listens on the settings' HTTP address for /metrics, /healthz
// and /readyz, if there is one, before anything runs: an address refused
// or taken stops the command at once. It returns nil without an address.
// /readyz waits for the pipelines named, and for the embedded server
// with waitNATS; worker, if set, labels the metrics of a cluster worker
// (see observe.Options).
func (a *app) listenHTTP(names []string, worker string, waitNATS bool) (*observe.Server, error) {
	s := a.settings
	if s.HTTP == "" {
		return nil, nil
	}
	addr, err := observe.CheckAddr(s.HTTP, s.HTTPToken, a.insecure)
	if errors.Is(err, observe.ErrNoAuth) {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("--http: %w; for --http beyond loopback set http_token (SLUICE_HTTP_TOKEN or --http-token), or, to accept that, give --insecure", err)}
	}
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("--http: %w", err)}
	}
	obs, err := observe.Listen(observe.Options{Addr: addr, Token: s.HTTPToken, Pipelines: names, Logger: a.log,
		Worker: worker, TLSCert: s.HTTPTLSCert, TLSKey: s.HTTPTLSKey, WaitNATS: waitNATS})
	if errors.Is(err, observe.ErrTLS) {
		return nil, &exitError{code: ExitUsage, err: fmt.Errorf("--http: %w", err)}
	}
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	return obs, nil
}

// serveHTTP serves obs until ctx is done or the returned func is called,
// which waits until it has stopped.
func (a *app) serveHTTP(ctx context.Context, obs *observe.Server) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	a.log.Info("serving /metrics, /healthz, /readyz and the status page at /", "addr", obs.Addr())
	if _, err := observe.CheckAddr(a.settings.HTTP, a.settings.HTTPToken, false); errors.Is(err, observe.ErrNoAuth) {
		a.log.Warn("--insecure: /metrics is served beyond loopback without a bearer token", "addr", obs.Addr())
	}
	go func() {
		defer close(done)
		if err := obs.Serve(ctx); err != nil {
			a.log.Error("metrics server stopped", "err", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
