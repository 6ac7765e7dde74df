package pipetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/dlq"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/stages"
)

// DefaultTimeout bounds the run of one case when [Options.Timeout] is 0.
const DefaultTimeout = time.Minute

// retryDelay replaces the backoff of every stage in a case: a failed
// record is retried as many times as in a real run, without the wait.
const retryDelay = 10 * time.Millisecond

// stopTimeout bounds the stop of a case's run after a timeout: a stage
// holding a record gives it back then.
const stopTimeout = 5 * time.Second

// Options configure [Run].
type Options struct {
	// Registry knows the stage types of the pipelines; nil means
	// stages.Default.
	Registry *stages.Registry
	// Timeout bounds the run of each case; 0 means [DefaultTimeout].
	Timeout time.Duration
	// Logger receives the runner's logs; nil discards them.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Registry == nil {
		o.Registry = stages.Default
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Result is the outcome of the cases of one test file.
type Result struct {
	File    string
	Cases   []CaseResult
	Elapsed time.Duration
	// Err, set by the caller, is what kept the file from running (it does
	// not validate): [WriteJUnit] reports it as an error of the file.
	Err error
}

// Failed returns how many cases failed.
func (r *Result) Failed() int {
	n := 0
	for _, c := range r.Cases {
		if !c.Passed() {
			n++
		}
	}
	return n
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name string
	Pos  pipeline.Position
	// Failures are what the case got wrong, each a paragraph: a heading
	// line, then the diff (lines "- expected" and "+ got").
	Failures []string
	// Err is what kept the case from running to its end (a stage that
	// failed, a timeout wrapping [ErrTimeout]); the case failed.
	Err     error
	Elapsed time.Duration
}

// Passed reports whether the case passed.
func (c CaseResult) Passed() bool { return c.Err == nil && len(c.Failures) == 0 }

// suite is a test file made ready to run: its pipeline read and checked.
type suite struct {
	tf   *File
	data []byte // the pipeline file
	opts Options
	load pipeline.Options
}

// prepare reads the pipeline of tf and checks that the cases name what
// it has. The problems of the pipeline file, and the stages, routes and
// inputs the cases name wrongly, come back as [pipeline.Problems].
func prepare(tf *File, opts Options) (*suite, error) {
	opts.setDefaults()
	data, err := os.ReadFile(tf.Pipeline)
	if err != nil {
		return nil, pipeline.Problems{{Pos: tf.PipelinePos, Msg: fmt.Sprintf("pipeline: %v", err)}}
	}
	s := &suite{tf: tf, data: data, opts: opts, load: pipeline.Options{
		Registry: opts.Registry,
		LookupEnv: func(name string) (string, bool) {
			if v, ok := tf.Env[name]; ok {
				return v, true
			}
			return os.LookupEnv(name)
		},
	}}
	p, err := pipeline.Parse(tf.Pipeline, data, s.load)
	if err != nil {
		return nil, err
	}
	var problems pipeline.Problems
	bad := func(pos pipeline.Position, format string, args ...any) {
		problems = append(problems, pipeline.Problem{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	for _, c := range tf.Cases {
		where := fmt.Sprintf("test %q", c.Name)
		switch st := p.Stage(c.Input.Stage); {
		case st == nil:
			bad(c.Input.StagePos, "%s: input.stage: pipeline %s has no stage %q (it has %s)", where, p.Name, c.Input.Stage, stageNames(p))
		case st.Role == stages.RoleSink:
			bad(c.Input.StagePos, "%s: input.stage: %q is a sink: records enter as the output of a source or transform", where, c.Input.Stage)
		}
		for _, e := range c.Expect {
			if err := checkOutput(p, e.Output); err != nil {
				bad(e.Pos, "%s: expect.%s: %v", where, e.Output, err)
			}
		}
		for _, e := range c.DeadLetters {
			if p.Stage(e.Stage) == nil {
				bad(e.Pos, "%s: dead_letters.%s: pipeline %s has no stage %q (it has %s)", where, e.Stage, p.Name, e.Stage, stageNames(p))
			}
		}
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, problems
	}
	return s, nil
}

func stageNames(p *pipeline.Pipeline) string {
	names := make([]string, len(p.Stages))
	for i, s := range p.Stages {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// checkOutput tells whether p has output: a stage, or "stage.route" for
// a route of a stage.
func checkOutput(p *pipeline.Pipeline, output string) error {
	name, route, routed := strings.Cut(output, ".")
	st := p.Stage(name)
	switch {
	case st == nil:
		return fmt.Errorf("pipeline %s has no stage %q (it has %s)", p.Name, name, stageNames(p))
	case st.Role == stages.RoleSink && routed:
		return fmt.Errorf("%q is a sink: it has no routes", name)
	case st.Role == stages.RoleSink:
		return nil
	}
	routes := []string{""}
	if st.Spec != nil && st.Spec.Routes != nil {
		routes = st.Spec.Routes(st.Params)
	}
	if !slices.Contains(routes, route) {
		if route == "" {
			return fmt.Errorf("stage %q sends everything on its routes: name one, as %s.ROUTE", name, name)
		}
		return fmt.Errorf("stage %q has no route %q", name, route)
	}
	return nil
}

// Run runs the cases of tf, one after the other, each on a fresh copy of
// its pipeline, on one NATS server embedded for the file. A malformed
// file (its pipeline, or what its cases name) gives [pipeline.Problems]
// and no result; a case that fails is in the result, not an error. An
// error also comes back if the server cannot start, or ctx ends.
func Run(ctx context.Context, tf *File, opts Options) (*Result, error) {
	s, err := prepare(tf, opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	dir, err := os.MkdirTemp("", "sluice-test-")
	if err != nil {
		return nil, fmt.Errorf("sluice: test %s: store: %w", tf.Path, err)
	}
	defer os.RemoveAll(dir)
	srv, err := server.Start(server.Options{StoreDir: dir})
	if err != nil {
		return nil, fmt.Errorf("sluice: test %s: %w", tf.Path, err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		return nil, fmt.Errorf("sluice: test %s: connect: %w", tf.Path, err)
	}
	defer nc.Close()
	res := &Result{File: tf.Path}
	for i, c := range tf.Cases {
		cr := s.runCase(ctx, nc, i, c)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		res.Cases = append(res.Cases, cr)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// runCase runs case c, the i-th of the file.
func (s *suite) runCase(ctx context.Context, nc *nats.Conn, i int, c *Case) (cr CaseResult) {
	start := time.Now()
	cr = CaseResult{Name: c.Name, Pos: c.Pos}
	defer func() { cr.Elapsed = time.Since(start) }()
	p, err := pipeline.Parse(s.tf.Pipeline, s.data, s.load)
	if err != nil { // it parsed in prepare
		cr.Err = err
		return cr
	}
	caps := rewrite(p, c, i)
	runCtx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	sum, err := runner.Run(runCtx, nc, p, runner.Options{
		Registry:    s.opts.Registry,
		Logger:      s.opts.Logger,
		Stdin:       strings.NewReader(""),
		Stdout:      io.Discard,
		StopTimeout: stopTimeout,
		Fresh:       true,
		WorkerID:    "test",
	})
	switch {
	case err != nil:
		cr.Err = err
		return cr
	case ctx.Err() != nil:
		cr.Err = ctx.Err()
		return cr
	case sum.Interrupted:
		// What the stages did so far is compared too: it tells where the
		// records stopped.
		cr.Err = fmt.Errorf("%w: the pipeline had not drained after %s", ErrTimeout, s.opts.Timeout)
	}
	for _, e := range c.Expect {
		want := make([]string, len(e.Records))
		for k, r := range e.Records {
			want[k] = canonical(r)
		}
		got := caps[e.Output].got()
		if missing, extra := multisetDiff(want, got); len(missing)+len(extra) > 0 {
			cr.Failures = append(cr.Failures, outputDiff(e, got, missing, extra))
		}
	}
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	dls, err := dlq.List(lctx, nc, p.Name, dlq.Filter{}, 0)
	if err != nil {
		cr.Err = fmt.Errorf("read the dead letters: %w", err)
		return cr
	}
	cr.Failures = append(cr.Failures, checkDeadLetters(c, dls)...)
	return cr
}

// rewrite makes p run case c, the i-th of its file: a name of its own,
// no stream shared with another case, every stage boundary a stream,
// one copy of each, retries without backoff; the sources replaced by the
// case's input (the input stage) or by nothing (the others), the sinks by
// captures, and a capture added on each other output the case expects.
// It returns the captures by output.
func rewrite(p *pipeline.Pipeline, c *Case, i int) map[string]*capture {
	suffix := "-t" + strconv.Itoa(i+1)
	p.Name = p.Name[:min(len(p.Name), 64-len(suffix))] + suffix
	p.Settings.Fusion = pipeline.FusionOff
	p.Settings.Storage = "memory"
	p.Settings.Replicas = 1
	p.Settings.Backoff = []time.Duration{retryDelay}
	caps := make(map[string]*capture)
	for _, st := range p.Stages {
		st.Backoff = []time.Duration{retryDelay}
		switch {
		case st.Name == c.Input.Stage:
			st.Role, st.From, st.InputPartitions = stages.RoleSource, nil, 0
			st.Type, st.Spec, st.Params = inputType, inputSpec(c.Input.Messages), stages.NewParams(nil)
		case st.Role == stages.RoleSource:
			st.Type, st.Spec, st.Params = inputType, inputSpec(nil), stages.NewParams(nil)
		case st.Role == stages.RoleSink:
			caps[st.Name] = newCapture()
			st.Type, st.Spec, st.Params = captureType, captureSpec(caps[st.Name]), stages.NewParams(nil)
		}
	}
	taken := make(map[string]bool, len(p.Stages))
	for _, st := range p.Stages {
		taken[st.Name] = true
	}
	for _, e := range c.Expect {
		if caps[e.Output] != nil {
			continue
		}
		name, route, _ := strings.Cut(e.Output, ".")
		up := p.Stage(name)
		cp := newCapture()
		caps[e.Output] = cp
		capName := "test-capture"
		for k := 2; taken[capName]; k++ {
			capName = "test-capture-" + strconv.Itoa(k)
		}
		taken[capName] = true
		p.Stages = append(p.Stages, &pipeline.Stage{
			Name:            capName,
			Role:            stages.RoleSink,
			Type:            captureType,
			Spec:            captureSpec(cp),
			Params:          stages.NewParams(nil),
			From:            []pipeline.Input{{Stage: name, Route: route}},
			Replicas:        1,
			OnError:         pipeline.OnErrorRetry,
			MaxDeliver:      p.Settings.MaxDeliver,
			Backoff:         []time.Duration{retryDelay},
			InputPartitions: up.Partitions,
			Pos:             up.Pos,
		})
	}
	return caps
}

// outputDiff describes how the records of output e differ from what it
// expects.
func outputDiff(e *Expectation, got, missing, extra []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: expect.%s: %d record(s) expected, %d got; %d missing, %d unexpected (-expected +got):",
		e.Pos, e.Output, len(e.Records), len(got), len(missing), len(extra))
	for _, m := range missing {
		b.WriteString("\n  - " + m)
	}
	for _, x := range extra {
		b.WriteString("\n  + " + x)
	}
	return b.String()
}

// checkDeadLetters compares the dead letters of a case with what it
// expects: every dead letter must be expected.
func checkDeadLetters(c *Case, dls []dlq.DeadLetter) []string {
	byStage := make(map[string][]dlq.DeadLetter)
	for _, dl := range dls {
		byStage[dl.Stage] = append(byStage[dl.Stage], dl)
	}
	var failures []string
	expected := make(map[string]bool)
	for _, e := range c.DeadLetters {
		expected[e.Stage] = true
		got := byStage[e.Stage]
		if e.Count >= 0 {
			if len(got) != e.Count {
				failures = append(failures, fmt.Sprintf("%s: dead_letters.%s: %d expected, %d got:%s",
					e.Pos, e.Stage, e.Count, len(got), listDeadLetters(got, "+")))
			}
			continue
		}
		to := match(len(e.Matches), len(got), func(i, j int) bool {
			m := e.Matches[i]
			return strings.Contains(got[j].Error, m.Error) && (!m.HasRecord || canonical(m.Record) == canonicalBytes(got[j].Data))
		})
		used := make([]bool, len(got))
		var diff strings.Builder
		for i, j := range to {
			if j < 0 {
				m := e.Matches[i]
				fmt.Fprintf(&diff, "\n  - error containing %q", m.Error)
				if m.HasRecord {
					fmt.Fprintf(&diff, ", record %s", canonical(m.Record))
				}
				continue
			}
			used[j] = true
		}
		var extra []dlq.DeadLetter
		for j, dl := range got {
			if !used[j] {
				extra = append(extra, dl)
			}
		}
		diff.WriteString(listDeadLetters(extra, "+"))
		if diff.Len() > 0 {
			failures = append(failures, fmt.Sprintf("%s: dead_letters.%s: %d expected, %d got (-expected +got):%s",
				e.Pos, e.Stage, len(e.Matches), len(got), diff.String()))
		}
	}
	var unexpected []dlq.DeadLetter
	for _, dl := range dls {
		if !expected[dl.Stage] {
			unexpected = append(unexpected, dl)
		}
	}
	if len(unexpected) > 0 {
		failures = append(failures, fmt.Sprintf("%s: %d unexpected dead letter(s) (list them under dead_letters):%s",
			c.Pos, len(unexpected), listDeadLetters(unexpected, "+")))
	}
	return failures
}

// listDeadLetters returns one line per dead letter, each after mark.
func listDeadLetters(dls []dlq.DeadLetter, mark string) string {
	var b strings.Builder
	for _, dl := range dls {
		fmt.Fprintf(&b, "\n  %s %s: %s; record %s", mark, dl.Stage, dl.Error, canonicalBytes(dl.Data))
	}
	return b.String()
}
