package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/server"
)

// How the commands reach a local run. A "sluice run" without --nats holds
// its store, and its embedded server serves a private endpoint recorded
// in the store (server.EndpointFile); the other commands of the host
// (status, top, tap, dlq) connect through it instead of starting a server
// of their own on the store, and the run answers schema.RunStatusSubject
// with the status of its pipelines.

// localStatusTimeout bounds a local run's answer to a status request.
const localStatusTimeout = 10 * time.Second

// dialEndpoint connects c through the endpoint of the run that holds the
// store of the settings, if there is one that answers, with opts. It
// returns false, and leaves c alone, when there is none: the caller
// starts an embedded server then, which tells who holds the store if a
// process does. stale is why an endpoint found was not used.
func (a *app) dialEndpoint(c *conn, opts []nats.Option) (ok bool, stale error, err error) {
	e, err := server.ReadEndpoint(a.settings.StoreDir)
	switch {
	case errors.Is(err, server.ErrNoEndpoint):
		return false, nil, nil
	case errors.Is(err, server.ErrStaleEndpoint):
		a.log.Debug("endpoint of the store not used", "err", err)
		return false, err, nil
	case err != nil:
		return false, nil, err
	}
	// A run's endpoint ends with it: the next run has another port and
	// token. So the connection ends too, and with it a tap or top.
	opts = append(opts, nats.Name("sluice"), nats.Token(e.Token), nats.NoReconnect())
	nc, err := nats.Connect(e.URL, opts...)
	if err != nil {
		return false, nil, fmt.Errorf("connect to the run (process %d) that holds the store %s through its endpoint: %w", e.PID, a.settings.StoreDir, err)
	}
	c.nc, c.local = nc, &e
	a.log.Debug("connected to the local run", "pid", e.PID, "store", a.settings.StoreDir)
	return true, nil, nil
}

// withRun is withNATS for the commands that watch what runs (status, top,
// tap): with a NATS URL they work on the cluster behind it; without, on
// the local run that holds the store, through its endpoint, and never
// start a server of their own.
func (a *app) withRun(ctx context.Context, fn func(context.Context, *conn) error) error {
	if err := a.loadSettings(); err != nil {
		return err
	}
	if a.settings.NATSURL == "" {
		dir := a.settings.StoreDir
		_, err := server.ReadEndpoint(dir)
		switch {
		case errors.Is(err, server.ErrNoEndpoint):
			return failure(fmt.Errorf("no sluice run is running on the store %s: start one, or give --nats URL (SLUICE_NATS_URL) for a cluster", dir))
		case err != nil:
			return failure(fmt.Errorf("cannot reach the sluice run of the store %s: %w", dir, err))
		}
	}
	return a.withNATS(ctx, false, fn)
}

// localRuns tracks the jobs of a run, for its answers to
// schema.RunStatusSubject.
type localRuns struct {
	started time.Time
	ps      func(name string) *pipeline.Pipeline // the version that runs

	mu   sync.Mutex
	jobs map[string]*runner.Job
}

// serveRunStatus answers schema.RunStatusSubject on nc with the status of
// the pipelines as they run, ps giving the version of each that runs
// (run --watch changes it), registering its hooks with the run's. The
// returned func stops answering.
func (a *app) serveRunStatus(nc *nats.Conn, ps func(name string) *pipeline.Pipeline) (func(), error) {
	l := &localRuns{started: time.Now(), ps: ps, jobs: make(map[string]*runner.Job)}
	sub, err := nc.Subscribe(schema.RunStatusSubject, func(m *nats.Msg) {
		ctx, cancel := context.WithTimeout(context.Background(), localStatusTimeout)
		defer cancel()
		b, err := json.Marshal(l.report(ctx, string(m.Data)))
		if err != nil {
			return
		}
		if err := m.Respond(b); err != nil {
			a.log.Debug("status request not answered", "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("answer status requests: %w", err)
	}
	a.started = append(a.started, func(j *runner.Job) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.jobs[j.Pipeline()] = j
	})
	a.stopped = append(a.stopped, func(name string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.jobs, name)
	})
	return func() { _ = sub.Unsubscribe() }, nil
}

// report returns the status of the pipelines running, or of pipeline
// name alone if it is not empty (none if it does not run).
func (l *localRuns) report(ctx context.Context, name string) *cluster.StatusReport {
	l.mu.Lock()
	jobs := make(map[string]*runner.Job, len(l.jobs))
	for n, j := range l.jobs {
		if name == "" || n == name {
			jobs[n] = j
		}
	}
	l.mu.Unlock()
	names := make([]string, 0, len(jobs))
	for n := range jobs {
		names = append(names, n)
	}
	slices.Sort(names)
	var ps []cluster.PipelineStatus
	for _, n := range names {
		ps = append(ps, cluster.LocalStatus(ctx, l.ps(n), jobs[n], l.started))
	}
	return cluster.LocalReport(ps, l.started)
}

// runStatus asks the local run behind c for the status of its pipelines,
// or of pipeline name alone (cluster.ErrNotDeployed if it does not run
// it).
func runStatus(ctx context.Context, c *conn, name string) (*cluster.StatusReport, error) {
	ctx, cancel := context.WithTimeout(ctx, localStatusTimeout)
	defer cancel()
	m, err := c.nc.RequestWithContext(ctx, schema.RunStatusSubject, []byte(name))
	if err != nil {
		return nil, fmt.Errorf("status of the local run (process %d): %w", c.local.PID, err)
	}
	var st cluster.StatusReport
	if err := json.Unmarshal(m.Data, &st); err != nil {
		return nil, fmt.Errorf("status of the local run (process %d): %w", c.local.PID, err)
	}
	if name != "" && len(st.Pipelines) == 0 {
		return nil, fmt.Errorf("%w: %s is not run by the local run (process %d)", cluster.ErrNotDeployed, name, c.local.PID)
	}
	return &st, nil
}

// runProbeTimeout bounds the wait for a run's answer on a cluster, where
// there is none, or the user may not ask (which NATS does not answer).
const runProbeTimeout = 2 * time.Second

// status returns the status of the cluster or the local run behind c. On
// a cluster it adds the run whose embedded server it is (a "sluice run
// --listen"), if one answers.
func status(ctx context.Context, c *conn, name string) (*cluster.StatusReport, error) {
	if c.local != nil {
		return runStatus(ctx, c, name)
	}
	st, err := cluster.Status(ctx, c.nc, name)
	notDeployed := name != "" && errors.Is(err, cluster.ErrNotDeployed)
	if err != nil && !notDeployed {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, runProbeTimeout)
	defer cancel()
	m, rerr := c.nc.RequestWithContext(pctx, schema.RunStatusSubject, []byte(name))
	var run cluster.StatusReport
	if rerr != nil || json.Unmarshal(m.Data, &run) != nil || len(run.Pipelines) == 0 {
		return st, err // no run here (no responders), or it may not be asked
	}
	if st == nil {
		st = &cluster.StatusReport{}
	}
	st.Pipelines = append(st.Pipelines, run.Pipelines...)
	st.Workers = append(st.Workers, run.Workers...)
	return st, nil
}

// storeFiles are the files of a sluice store directory besides the
// server's own, which --fresh may remove with it.
var storeFiles = []string{server.JetStreamDir, server.LockFile, server.EndpointFile}

// isStoreFile reports whether the entry name of a store directory is part
// of a sluice store.
func isStoreFile(name string) bool {
	return slices.Contains(storeFiles, name) || filepath.Ext(name) == ".tmp" && slices.Contains(storeFiles, name[:len(name)-4])
}
