package cli

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
)

// How "sluice run --watch" reloads a pipeline. Each pipeline has a
// supervisor (watchRun) that runs one version at a time with runner.Run
// and reads the version's file every watchInterval. A new content that
// stays the same for one more read is validated; if it validates, keeps
// the pipeline's name and has the stages --stages names, the supervisor
// stops the running version as SIGTERM does (runner.Run's context is
// cancelled: workers settle their batches, sources store their
// checkpoints, the run is recorded as interrupted), and runs the new
// version, which resumes that run. Once the new version runs, the
// consumers no stage of it reads are deleted (runner.Reprovision).

// watchInterval is how often run --watch reads each pipeline file.
const watchInterval = 500 * time.Millisecond

// watchedFile is the content of a watched pipeline file, as polls see it.
// A change is taken once two polls in a row read the same new content,
// so that a file being written is not taken half-written.
type watchedFile struct {
	path    string
	applied [sha256.Size]byte // the content of the version that runs (or ran last)
	seen    [sha256.Size]byte // the content last acted on: applied, reported or refused
	last    [sha256.Size]byte // what the previous poll read
	hasLast bool
	missing int // polls in a row that found no file
}

// newWatchedFile starts watching path, whose content is data.
func newWatchedFile(path string, data []byte) *watchedFile {
	sum := sha256.Sum256(data)
	return &watchedFile{path: path, applied: sum, seen: sum}
}

// readPipelineFile reads a pipeline file, up to pipeline.MaxFileSize.
func readPipelineFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, pipeline.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > pipeline.MaxFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", pipeline.ErrTooLarge, path, pipeline.MaxFileSize)
	}
	return data, nil
}

// poll reads the file and returns its content when it differs from what
// was last acted on and the previous poll read the same: a change to act
// on, which it marks as seen. A file missing (an editor replacing it by
// a rename) or unreadable is no change; err tells why when it lasts
// more than one poll.
func (w *watchedFile) poll() (data []byte, sum [sha256.Size]byte, changed bool, err error) {
	data, err = readPipelineFile(w.path)
	if err != nil {
		w.hasLast = false
		if w.missing++; w.missing == 2 {
			return nil, sum, false, err
		}
		return nil, sum, false, nil
	}
	w.missing = 0
	sum = sha256.Sum256(data)
	stable := w.hasLast && sum == w.last
	w.last, w.hasLast = sum, true
	if sum == w.seen || !stable {
		return nil, sum, false, nil
	}
	w.seen = sum
	return data, sum, true, nil
}

// versions holds the version of each pipeline that a run runs now, for
// what reports on the run (its status). Safe for concurrent use.
type versions struct {
	mu sync.Mutex
	ps map[string]*pipeline.Pipeline
}

func newVersions(ps []*pipeline.Pipeline) *versions {
	v := &versions{ps: make(map[string]*pipeline.Pipeline, len(ps))}
	for _, p := range ps {
		v.ps[p.Name] = p
	}
	return v
}

// get returns the version of pipeline name that runs, nil if none.
func (v *versions) get(name string) *pipeline.Pipeline {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ps[name]
}

func (v *versions) set(p *pipeline.Pipeline) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ps[p.Name] = p
}

// runResult is what runner.Run returned.
type runResult struct {
	sum *runner.Summary
	err error
}

// version is one version of a pipeline file.
type version struct {
	p   *pipeline.Pipeline
	n   int               // 1 for the version the command began with
	sum [sha256.Size]byte // of the file's content
}

// watch is the state of one pipeline under run --watch.
type watch struct {
	a       *app
	nc      *nats.Conn
	opts    runner.Options // without Started: the supervisor sets it per version
	started func(*runner.Job)
	report  func(*runner.Summary)
	vs      *versions
	file    *watchedFile
	cur     version // the version running, or to run next
	last    int     // the highest version number given
}

// watchRun runs p as run does without --watch and reloads it when its
// file changes (see the comment at the top of this file), until ctx is
// done or a run fails. When a run finishes (its sources have ended and
// every stage has drained), it keeps watching: the next change begins a
// new run. started is called with each job once its stages run; report
// with the summary of a run that has finished, failed or was stopped by
// ctx (not of one stopped for a reload).
func (a *app) watchRun(ctx context.Context, nc *nats.Conn, p *pipeline.Pipeline, opts runner.Options,
	vs *versions, started func(*runner.Job), report func(*runner.Summary)) error {
	data, err := readPipelineFile(p.File)
	if err != nil {
		return fmt.Errorf("--watch: %w", err)
	}
	f := newWatchedFile(p.File, data)
	w := &watch{a: a, nc: nc, opts: opts, started: started, report: report, vs: vs,
		file: f, cur: version{p: p, n: 1, sum: f.applied}, last: 1}
	return w.run(ctx)
}

func (w *watch) run(ctx context.Context) error {
	a := w.a
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	// from is the version cur replaces, if any: a reload is logged, and
	// the consumers no stage reads are deleted, once cur runs. fallback
	// tells that from was stopped for cur, and runs again if cur cannot
	// start; else from's run had finished.
	var from *version
	fallback := false
	for {
		next, res := w.runVersion(ctx, tick.C, from)
		// --fresh is for the run the command begins with: the versions
		// after resume it, or begin the next.
		w.opts.Fresh = false
		for _, f := range a.stopped {
			f(w.cur.p.Name)
		}
		switch {
		case next != nil: // stopped for a reload
			if res.err != nil && !errors.Is(res.err, context.Canceled) {
				w.report(res.sum)
				return res.err
			}
			old := w.cur
			from, fallback, w.cur = &old, true, *next
			continue
		case ctx.Err() != nil:
			if res.sum == nil && errors.Is(res.err, context.Canceled) {
				a.log.Info("stopped before the run started", "pipeline", w.cur.p.Name)
				return nil
			}
			w.report(res.sum)
			return res.err
		case res.err != nil && res.sum == nil && from != nil && fallback:
			// The new version cannot start (a stage cannot be built):
			// the old one takes the run on again.
			a.log.Error(fmt.Sprintf("pipeline %s version %d cannot start; version %d runs again", w.cur.p.Name, w.cur.n, from.n),
				"file", w.file.path, "err", res.err)
			w.cur, from = *from, nil
			continue
		case res.err != nil && res.sum == nil && from != nil:
			// After a finished run: wait for the next version.
			a.log.Error(fmt.Sprintf("pipeline %s version %d cannot start; watching %s for changes (Ctrl-C to stop)", w.cur.p.Name, w.cur.n, w.file.path),
				"err", res.err)
		case res.err != nil:
			w.report(res.sum)
			return res.err
		default:
			w.report(res.sum)
			a.log.Info(fmt.Sprintf("pipeline %s finished; watching %s for changes (Ctrl-C to stop)", w.cur.p.Name, w.file.path))
		}
		// Wait for a new version, which begins a new run as "sluice run"
		// would (or resumes the one that did not start).
		next = w.waitVersion(ctx, tick.C)
		if next == nil {
			return nil // stopped
		}
		old := w.cur
		from, fallback, w.cur = &old, false, *next
	}
}

// runVersion runs w.cur until it ends, or until a new version of its file
// is ready, which it returns after stopping w.cur as SIGTERM does. from
// is the version w.cur replaces, if any: once w.cur runs, the reload is
// logged and the consumers no stage of w.cur reads are deleted.
func (w *watch) runVersion(ctx context.Context, tick <-chan time.Time, from *version) (*version, runResult) {
	a, cur := w.a, w.cur
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	running := make(chan struct{}, 1)
	opts := w.opts
	opts.Started = func(j *runner.Job) {
		w.started(j)
		running <- struct{}{} // called at most once
	}
	done := make(chan runResult, 1)
	go func() {
		sum, err := runner.Run(runCtx, w.nc, cur.p, opts)
		done <- runResult{sum, err}
	}()
	for {
		select {
		case res := <-done:
			return nil, res
		case <-running:
			w.vs.set(cur.p)
			w.file.applied = cur.sum
			if from == nil {
				continue
			}
			added, removed := stageChanges(from.p, cur.p)
			a.log.Info(fmt.Sprintf("pipeline %s reloaded (version %d)", cur.p.Name, cur.n),
				"file", w.file.path, "added", strings.Join(added, ","), "removed", strings.Join(removed, ","))
			if err := runner.Reprovision(ctx, w.nc, cur.p); err != nil {
				a.log.Warn("the consumers no stage reads any more were not deleted: they keep what their streams hold", "pipeline", cur.p.Name, "err", err)
			}
		case <-tick:
			next := w.check(ctx)
			if next == nil {
				continue
			}
			a.log.Debug(fmt.Sprintf("stopping pipeline %s version %d for version %d", cur.p.Name, cur.n, next.n))
			cancel() // the clean stop of SIGTERM
			return next, <-done
		}
	}
}

// waitVersion waits for a new version of the file that validates, and
// returns it; nil when ctx is done first.
func (w *watch) waitVersion(ctx context.Context, tick <-chan time.Time) *version {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if next := w.check(ctx); next != nil {
				return next
			}
		}
	}
}

// check polls the file and returns the new version to run, if it has
// changed into one that validates, keeps the pipeline's name and has the
// stages --stages names. Else it logs why the version running stays,
// once per content.
func (w *watch) check(ctx context.Context) *version {
	a, cur, path := w.a, w.cur, w.file.path
	name := cur.p.Name
	data, sum, changed, err := w.file.poll()
	if err != nil {
		a.log.Warn(fmt.Sprintf("cannot read pipeline file %s; version %d of pipeline %s stays", path, cur.n, name), "err", err)
		return nil
	}
	if !changed || ctx.Err() != nil {
		return nil
	}
	if sum == w.file.applied {
		a.log.Info(fmt.Sprintf("pipeline file %s is back to version %d, which stays", path, cur.n), "pipeline", name)
		return nil
	}
	next, err := pipeline.Parse(path, data, pipeline.Options{Registry: a.reg})
	if err != nil {
		a.log.Error(fmt.Sprintf("pipeline file %s does not validate; version %d of pipeline %s stays", path, cur.n, name))
		a.printLoadError(err)
		return nil
	}
	if next.Name != name {
		a.log.Error(fmt.Sprintf("pipeline file %s renames pipeline %s to %s: refused, a pipeline cannot be renamed while it runs (stop the run to rename it); version %d of %s stays",
			path, name, next.Name, cur.n, name))
		return nil
	}
	var gone []string
	for _, s := range w.opts.Stages {
		if next.Stage(s) == nil {
			gone = append(gone, s)
		}
	}
	if len(gone) > 0 {
		a.log.Error(fmt.Sprintf("pipeline file %s has no stage %s, which --stages names; version %d of pipeline %s stays",
			path, strings.Join(gone, ", "), cur.n, name))
		return nil
	}
	w.last++
	return &version{p: next, n: w.last, sum: sum}
}

// stageChanges returns the names of the stages of next that old does not
// have, and of those of old that next does not, in file order.
func stageChanges(old, next *pipeline.Pipeline) (added, removed []string) {
	names := func(p *pipeline.Pipeline) []string {
		out := make([]string, len(p.Stages))
		for i, s := range p.Stages {
			out[i] = s.Name
		}
		return out
	}
	before, after := names(old), names(next)
	for _, n := range after {
		if !slices.Contains(before, n) {
			added = append(added, n)
		}
	}
	for _, n := range before {
		if !slices.Contains(after, n) {
			removed = append(removed, n)
		}
	}
	return added, removed
}

// errNotWatchable is returned for --watch on a file that cannot be
// watched, such as standard input.
var errNotWatchable = errors.New("sluice: --watch needs pipeline files")

// checkWatchable refuses --watch for files that are not regular files.
func checkWatchable(files []string) error {
	for _, f := range files {
		info, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // loading it says so
		}
		if err != nil {
			return fmt.Errorf("--watch: %w", err)
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file", errNotWatchable, f)
		}
	}
	return nil
}
