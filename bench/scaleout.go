package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages/builtin"
)

// The scale-out group: one CPU-bound transform stage run by P `sluice
// worker` processes, on a `sluice server` of its own or on a 3-node
// cluster of them, timed from the deploy to the run's finished record.

// scScaleout names the scenario in progress lines.
const scScaleout = "sluice-scaleout"

// exprHeavy is the CPU-bound transform: a 32-bit FNV-1a hash over the
// characters of three fields (about 100), each character's code taken
// with indexOf, plus a word count and a slug. About 30 µs per record on
// one core, against 4 µs for exprDouble: alone, one worker is well below
// the hop's ceiling.
const exprHeavy = `let a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -|:"; ` +
	`let s = upper(customer) + "|" + note + "|" + placed_at; ` +
	`merge($env, {` +
	`"digest": reduce(split(s, ""), bitand(bitxor(#acc, indexOf(a, #)) * 16777619, 4294967295), 2166136261), ` +
	`"words": len(split(note, " ")), ` +
	`"slug": lower(replace(customer + "-" + country, "-", "_"))})`

// Names of the deployed pipeline and its stages.
const (
	scalePipeline = "scaleout"
	scaleSource   = "gen"
	scaleWork     = "work"
	scaleSink     = "out"
)

// Waits of the scale-out runs: for servers to be ready and workers to
// register, for a process to stop after SIGTERM before it is killed, and
// the pace of the polls while setting up.
const (
	scaleReadyWait   = time.Minute
	scaleStopWait    = 15 * time.Second
	scaleWorkerDrain = "5s" // the workers' --shutdown-timeout
	scalePollEvery   = 20 * time.Millisecond
	scalePollWait    = 5 * time.Second
	scaleExitCheck   = 100 * time.Millisecond
	scaleLogTail     = 2000 // bytes of a process's log in an error
)

// scaleShape is a server set-up of the scale-out runs.
type scaleShape struct {
	name     string // as in the report
	servers  int
	replicas int // settings.replicas: copies of each stream
}

var scaleShapes = []scaleShape{
	{name: "single server R1", servers: 1, replicas: 1},
	{name: "3-node cluster R3", servers: 3, replicas: 3},
}

// scaleKey identifies a row of the scale-out table.
type scaleKey struct {
	shape     string
	processes int
}

// scaleSample is what one timed scale-out run measured. CPU figures are
// CPUs kept busy on average over the timed part.
type scaleSample struct {
	elapsed       time.Duration
	serverCPU     float64 // all servers together; -1 if unknown
	workerCPU     float64 // all workers together; -1 if unknown
	busiestWorker float64 // the worker process that used the most; -1 if unknown
	otherCPU      float64 // anything but the bench and its subprocesses; -1 if unknown
}

func (s scaleSample) rate(n int) float64 { return float64(n) / s.elapsed.Seconds() }

// cpuMicrosPerMsg returns the CPU time servers and workers spent per
// record, in µs; -1 if unknown.
func (s scaleSample) cpuMicrosPerMsg(n int) float64 {
	if s.serverCPU < 0 || s.workerCPU < 0 {
		return -1
	}
	return (s.serverCPU + s.workerCPU) * s.elapsed.Seconds() * 1e6 / float64(n)
}

// scaleout runs the group: the sluice binary it execs and the flags.
type scaleout struct {
	bin       string
	n         int
	runs      int
	processes []int
	gcPercent int
	template  string // the generate source's record
	log       io.Writer
}

// buildSluice builds cmd/sluice into dir and returns the binary's path.
func buildSluice(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "sluice")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/sluicehq/sluice/cmd/sluice")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build sluice (run the bench inside the module, or give -sluice-bin): %w\n%s", err, out.String())
	}
	return bin, nil
}

// runScaleout runs every shape with every process count, -runs times, and
// returns the section of the report. Each run interleaves the shapes and
// counts, so that none always comes first after a pause.
func runScaleout(ctx context.Context, s *scaleout) (*ScaleoutReport, error) {
	samples := make(map[scaleKey][]scaleSample)
	for run := range s.runs {
		for _, sh := range scaleShapes {
			for _, p := range s.processes {
				smp, err := s.timeRun(ctx, sh, p)
				if err != nil {
					return nil, fmt.Errorf("%s %s, %d processes: %w", scScaleout, sh.name, p, err)
				}
				samples[scaleKey{sh.name, p}] = append(samples[scaleKey{sh.name, p}], smp)
				fmt.Fprintf(s.log, "bench: %-16s %-17s p=%d run %d/%d: %9.0f msgs/s, CPUs busy: servers %.2f, workers %.2f (busiest %.2f), others %.2f\n",
					scScaleout, sh.name, p, run+1, s.runs, smp.rate(s.n), smp.serverCPU, smp.workerCPU, smp.busiestWorker, smp.otherCPU)
			}
		}
	}
	return &ScaleoutReport{N: s.n, Runs: s.runs, Expr: exprHeavy, Rows: scaleoutRows(samples, s.n)}, nil
}

// scaleSpec is the pipeline of the runs: the source on one worker (by
// lease), the transform and the sink with one worker in each process.
func (s *scaleout) scaleSpec(sh scaleShape) []byte {
	return fmt.Appendf(nil, `name: %s
settings: {storage: file, replicas: %d}
stages:
  - {name: %s, source: generate, with: {count: %d, template: '%s'}}
  - {name: %s, transform: map, replicas: 1, with: {expr: '%s'}}
  - {name: %s, sink: discard, replicas: 1}
`, scalePipeline, sh.replicas, scaleSource, s.n, s.template, scaleWork, exprHeavy, scaleSink)
}

// timeout bounds one run, set-up included.
func (s *scaleout) timeout() time.Duration {
	return time.Duration(s.n/1000)*time.Second + 2*time.Minute
}

// timeRun starts sh's servers and procs workers in a fresh store, deploys
// the pipeline and times it from the deploy to its run's finished record,
// then checks that every record went through and stops the processes.
func (s *scaleout) timeRun(ctx context.Context, sh scaleShape, procs int) (scaleSample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	dir, err := os.MkdirTemp("", "sluice-bench-scaleout-")
	if err != nil {
		return scaleSample{}, fmt.Errorf("store directory: %w", err)
	}
	defer os.RemoveAll(dir)
	f := &fleet{dir: dir}
	defer f.stop()
	if err := f.startServers(ctx, s.bin, sh.servers); err != nil {
		return scaleSample{}, err
	}
	nc, err := nats.Connect(f.urls(), nats.Name("sluice-bench-control"), nats.MaxReconnects(-1))
	if err != nil {
		return scaleSample{}, fmt.Errorf("control connection: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return scaleSample{}, fmt.Errorf("control connection: %w", err)
	}
	if err := f.startWorkers(s.bin, procs, s.gcPercent); err != nil {
		return scaleSample{}, err
	}
	if err := f.waitWorkers(ctx, js, procs); err != nil {
		return scaleSample{}, err
	}
	spec := s.scaleSpec(sh)
	p, err := pipeline.Parse(scalePipeline+".yaml", spec, pipeline.Options{Registry: builtin.NewRegistry()})
	if err != nil {
		return scaleSample{}, fmt.Errorf("pipeline %s: %w", scalePipeline, err)
	}

	cpu0 := f.readCPU()
	d, err := cluster.Deploy(ctx, nc, p, spec)
	if err != nil {
		return scaleSample{}, err
	}
	end, err := f.waitFinished(ctx, js, d.Run)
	if err != nil {
		return scaleSample{}, fmt.Errorf("%w (%s)", err, consumerState(js,
			[2]string{schema.StreamName(scalePipeline, scaleSource), schema.ConsumerName(scaleWork)},
			[2]string{schema.StreamName(scalePipeline, scaleWork), schema.ConsumerName(scaleSink)}))
	}
	smp := f.readCPU().since(cpu0, end)
	if err := checkScaleRun(ctx, js, s.n); err != nil {
		return scaleSample{}, err
	}
	if err := f.stop(); err != nil {
		return scaleSample{}, err
	}
	return smp, nil
}

// checkScaleRun checks that the transform published every record once,
// that the sink acknowledged them all and that none was dead-lettered.
func checkScaleRun(ctx context.Context, js jetstream.JetStream, n int) error {
	out, err := js.Stream(ctx, schema.StreamName(scalePipeline, scaleWork))
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if last := out.CachedInfo().State.LastSeq; last != uint64(n) {
		return fmt.Errorf("check: the transform published %d messages for %d records", last, n)
	}
	c, err := js.Consumer(ctx, out.CachedInfo().Config.Name, schema.ConsumerName(scaleSink))
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if acked := c.CachedInfo().AckFloor.Stream; acked != uint64(n) {
		return fmt.Errorf("check: the sink acknowledged %d of %d records", acked, n)
	}
	dlq, err := js.Stream(ctx, schema.DLQStreamName(scalePipeline))
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if dl := dlq.CachedInfo().State.Msgs; dl != 0 {
		return fmt.Errorf("check: %d dead letters", dl)
	}
	return nil
}

// ---- the processes ----

// proc is a `sluice server` or `sluice worker` subprocess.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    *lockedBuffer // its stderr
	exited chan struct{} // closed once it has exited; then err is set
	err    error
}

// startProc starts bin with args in dir. A goroutine waits for the
// process; stop ends it.
func startProc(name, bin, dir string, env []string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = childAttr()
	p := &proc{name: name, cmd: cmd, log: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Discard, p.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM and waits for the process to exit; after
// scaleStopWait it kills it. It reports an exit other than a clean one.
func (p *proc) stop() error {
	select {
	case <-p.exited:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(scaleStopWait)
	defer t.Stop()
	select {
	case <-p.exited:
		return p.exitErr()
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within %s of SIGTERM: killed\n%s", p.name, scaleStopWait, p.logTail())
	}
}

func (p *proc) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("%s: %w\n%s", p.name, p.err, p.logTail())
	}
	return nil
}

// logTail returns the end of the process's log.
func (p *proc) logTail() string {
	s := p.log.String()
	if len(s) > scaleLogTail {
		s = "…" + s[len(s)-scaleLogTail:]
	}
	return s
}

// lockedBuffer is a bytes.Buffer that a process's output copier writes
// while the harness reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fleet is the processes of one run.
type fleet struct {
	dir     string
	servers []*proc
	url     []string // the servers' client URLs
	workers []*proc
	stopped bool
}

// childEnv is the environment of the subprocesses: the bench's, without
// SLUICE_* settings, which would change what the runs measure, plus
// extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServers starts n `sluice server` processes on loopback, routed to
// each other when n > 1, and waits until every one logged "JetStream
// ready".
func (f *fleet) startServers(ctx context.Context, bin string, n int) error {
	clusterPorts := make([]int, n)
	var routes []string
	for i := range clusterPorts {
		port, err := freePort()
		if err != nil {
			return err
		}
		clusterPorts[i] = port
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", port))
	}
	for i := range n {
		port, err := freePort()
		if err != nil {
			return err
		}
		name := fmt.Sprintf("n%d", i+1)
		args := []string{"server", "--log-format", "text", "--name", name,
			"--store-dir", filepath.Join(f.dir, name), "--listen", fmt.Sprintf("127.0.0.1:%d", port)}
		if n > 1 {
			args = append(args, "--cluster-listen", fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]),
				"--routes", strings.Join(routes, ","))
		}
		p, err := startProc("server "+name, bin, f.dir, childEnv(), args...)
		if err != nil {
			return err
		}
		f.servers = append(f.servers, p)
		f.url = append(f.url, fmt.Sprintf("nats://127.0.0.1:%d", port))
	}
	return f.waitFor(ctx, "JetStream ready on every server", func(context.Context) (bool, error) {
		for _, p := range f.servers {
			if !strings.Contains(p.log.String(), "JetStream ready") {
				return false, nil
			}
		}
		return true, nil
	})
}

func (f *fleet) urls() string { return strings.Join(f.url, ",") }

// startWorkers starts n `sluice worker` processes.
func (f *fleet) startWorkers(bin string, n, gcPercent int) error {
	for i := range n {
		id := fmt.Sprintf("w%d", i+1)
		p, err := startProc("worker "+id, bin, f.dir, childEnv("SLUICE_GC_PERCENT="+strconv.Itoa(gcPercent)),
			"worker", "--log-format", "text", "--nats", f.urls(), "--id", id, "--shutdown-timeout", scaleWorkerDrain)
		if err != nil {
			return err
		}
		f.workers = append(f.workers, p)
	}
	return nil
}

// waitWorkers waits until n workers have a heartbeat in sluice_workers.
func (f *fleet) waitWorkers(ctx context.Context, js jetstream.JetStream, n int) error {
	return f.waitFor(ctx, fmt.Sprintf("%d workers registered", n), func(ctx context.Context) (bool, error) {
		kv, err := js.KeyValue(ctx, schema.WorkersBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		keys, err := kv.Keys(ctx)
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return false, nil
		}
		return len(keys) >= n, err
	})
}

// waitFor polls ready until it says so, failing when a process exits, the
// wait passes scaleReadyWait or ctx is done. Each poll has scalePollWait,
// so one request lost while a cluster elects its leaders is asked again
// rather than holding the whole wait. A wait that runs out names what every
// process last logged.
func (f *fleet) waitFor(ctx context.Context, what string, ready func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, scaleReadyWait)
	defer cancel()
	t := time.NewTicker(scalePollEvery)
	defer t.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, scalePollWait)
		ok, err := ready(pctx)
		pcancel()
		if ok {
			return nil
		}
		if err := f.exited(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)%s", what, ctx.Err(), err, f.logTails())
		}
	}
}

// logTails is the end of every process's log, one after the other.
func (f *fleet) logTails() string {
	var b strings.Builder
	for _, p := range slices.Concat(f.servers, f.workers) {
		fmt.Fprintf(&b, "\n--- %s:\n%s", p.name, p.logTail())
	}
	return b.String()
}

// exited returns an error naming a process that has exited, with its log.
func (f *fleet) exited() error {
	for _, p := range slices.Concat(f.servers, f.workers) {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited (%v)\n%s", p.name, p.err, p.logTail())
		default:
		}
	}
	return nil
}

// waitFinished watches the run record of the pipeline until run is
// finished and returns when it saw that; a process exiting fails it.
func (f *fleet) waitFinished(ctx context.Context, js jetstream.JetStream, run uint64) (time.Time, error) {
	kv, err := js.KeyValue(ctx, schema.StateBucket)
	if err != nil {
		return time.Time{}, fmt.Errorf("watch run record: %w", err)
	}
	w, err := kv.Watch(ctx, schema.RunKey(scalePipeline))
	if err != nil {
		return time.Time{}, fmt.Errorf("watch run record: %w", err)
	}
	defer w.Stop()
	// A process that exits fails the run at once rather than at the
	// timeout; checking costs no request.
	t := time.NewTicker(scaleExitCheck)
	defer t.Stop()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return time.Time{}, errors.New("watch run record: the watch ended")
			}
			if e == nil {
				continue // the initial values are all in
			}
			var rec schema.RunRecord
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return time.Time{}, fmt.Errorf("run record %q: %w", e.Value(), err)
			}
			switch {
			case rec.Run != run:
			case rec.State == schema.RunFinished:
				return time.Now(), nil
			case rec.State != schema.RunRunning:
				return time.Time{}, fmt.Errorf("run %d ended %s", run, rec.State)
			}
		case <-t.C:
			if err := f.exited(); err != nil {
				return time.Time{}, fmt.Errorf("during the run: %w", err)
			}
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for run %d to finish: %w", run, ctx.Err())
		}
	}
}

// stop stops the workers, then the servers, each group at once, and
// reports the first unclean exit. It is idempotent.
func (f *fleet) stop() error {
	if f.stopped {
		return nil
	}
	f.stopped = true
	stopAll := func(ps []*proc) error {
		errs := make([]error, len(ps))
		var wg sync.WaitGroup
		for i, p := range ps {
			wg.Go(func() { errs[i] = p.stop() })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	werr := stopAll(f.workers)
	return errors.Join(werr, stopAll(f.servers))
}

// ---- CPU of the processes ----

// fleetCPU is the CPU ticks of every process of a fleet and of the
// machine at one moment.
type fleetCPU struct {
	at      time.Time
	machine cpuTicks
	servers []int64 // -1 where unknown
	workers []int64
}

func (f *fleet) readCPU() fleetCPU {
	c := fleetCPU{at: time.Now(), machine: readCPUTicks()}
	for _, p := range f.servers {
		c.servers = append(c.servers, procTicks(p.cmd.Process.Pid))
	}
	for _, p := range f.workers {
		c.workers = append(c.workers, procTicks(p.cmd.Process.Pid))
	}
	return c
}

// since returns the sample of the run from c0 to end, c having been read
// just after end.
func (c fleetCPU) since(c0 fleetCPU, end time.Time) scaleSample {
	s := scaleSample{elapsed: end.Sub(c0.at), serverCPU: -1, workerCPU: -1, busiestWorker: -1, otherCPU: -1}
	wall := c.at.Sub(c0.at)
	cpus := func(t, t0 int64) float64 { return float64(t-t0) * float64(clockTick) / float64(wall) }
	sum := func(now, then []int64) (total, most float64, ok bool) {
		for i := range now {
			if now[i] < 0 || then[i] < 0 {
				return 0, 0, false
			}
			v := cpus(now[i], then[i])
			total += v
			most = max(most, v)
		}
		return total, most, true
	}
	srv, _, okS := sum(c.servers, c0.servers)
	wrk, most, okW := sum(c.workers, c0.workers)
	if okS {
		s.serverCPU = srv
	}
	if okW {
		s.workerCPU, s.busiestWorker = wrk, most
	}
	if okS && okW && c.machine.ok && c0.machine.ok {
		machine := cpus(int64(c.machine.machine), int64(c0.machine.machine))
		self := cpus(int64(c.machine.self), int64(c0.machine.self))
		s.otherCPU = max(machine-self-srv-wrk, 0)
	}
	return s
}

// procTicks returns the user and system CPU time of process pid in clock
// ticks, from /proc (Linux); -1 if unknown.
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return -1
	}
	var t int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return -1
		}
		t += v
	}
	return t
}

// ---- the report's section ----

// scaleoutRows turns the samples into rows: shapes in scaleShapes order,
// then processes.
func scaleoutRows(samples map[scaleKey][]scaleSample, n int) []ScaleoutRow {
	var rows []ScaleoutRow
	for k, ss := range samples {
		i := slices.IndexFunc(scaleShapes, func(sh scaleShape) bool { return sh.name == k.shape })
		if i < 0 {
			continue
		}
		sh := scaleShapes[i]
		row := ScaleoutRow{Shape: sh.name, Servers: sh.servers, StreamReplicas: sh.replicas, Processes: k.processes, OtherCPU: -1}
		var srv, wrk, most, perMsg []float64
		for _, s := range ss {
			row.Runs = append(row.Runs, s.rate(n))
			srv, wrk, most = append(srv, s.serverCPU), append(wrk, s.workerCPU), append(most, s.busiestWorker)
			perMsg = append(perMsg, s.cpuMicrosPerMsg(n))
			row.OtherCPU = max(row.OtherCPU, s.otherCPU)
		}
		row.MsgsPerSec = median(row.Runs)
		row.Min, row.Max = slices.Min(row.Runs), slices.Max(row.Runs)
		row.ServerCPU, row.WorkerCPU, row.BusiestWorkerCPU = median(srv), median(wrk), median(most)
		row.CPUMicrosPerMsg = median(perMsg)
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b ScaleoutRow) int {
		ia := slices.IndexFunc(scaleShapes, func(sh scaleShape) bool { return sh.name == a.Shape })
		ib := slices.IndexFunc(scaleShapes, func(sh scaleShape) bool { return sh.name == b.Shape })
		if ia != ib {
			return ia - ib
		}
		return a.Processes - b.Processes
	})
	rate := func(shape string, p int) float64 {
		for _, r := range rows {
			if r.Shape == shape && r.Processes == p {
				return r.MsgsPerSec
			}
		}
		return 0
	}
	for i := range rows {
		r := &rows[i]
		if one := rate(r.Shape, 1); one > 0 {
			r.VsOneProcess = ptr(r.MsgsPerSec / one)
		}
		if single := rate(scaleShapes[0].name, r.Processes); single > 0 && r.Shape != scaleShapes[0].name {
			r.VsSingle = ptr(r.MsgsPerSec / single)
		}
	}
	return rows
}
