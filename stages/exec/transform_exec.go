package exec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// Defaults and limits of the exec transform.
const (
	execDefaultTimeout      = 30 * time.Second
	execDefaultBackoffMin   = 100 * time.Millisecond
	execDefaultBackoffMax   = 30 * time.Second
	execDefaultCloseTimeout = 5 * time.Second
	// execHealthy is how long a process must have run for the restart
	// delay to start over from restart_backoff_min (as it does after any
	// record the command answers).
	execHealthy = time.Minute
	// execWaitDelay bounds how long the command's stderr may stay open
	// after it exited (a child of the command may hold it).
	execWaitDelay = 2 * time.Second
	// execMaxLine is the longest answer line the transform accepts.
	execMaxLine = 64 << 20
	// execMaxStderrLine is the longest stderr line logged as one entry;
	// longer ones are logged in pieces.
	execMaxStderrLine = 4096
	// execQuoteMax is how many bytes of a line an error quotes.
	execQuoteMax = 120
)

func execSpec() stages.Spec {
	return stages.Spec{
		Name:    "exec",
		Summary: "Run each record through a command in any language, speaking JSON lines",
		Doc: `Starts command as a long-lived child process, one per worker, and ` +
			`writes each record to its standard input as one line; the command ` +
			`answers with one line on its standard output, in the same order:

- a JSON object: the output record;
- a JSON array of objects: one output record per element (an empty array filters the record);
- null: the record is filtered;
- a JSON string: the record is rejected, the string saying why: it goes to the dead-letter stream with the reason in its error.

Any other answer (not JSON, a number, a boolean, an array holding ` +
			`something other than objects, a line over 64 MiB) sends the record ` +
			`to the dead-letter stream with an error quoting the start of the line. A ` +
			`payload that spans several lines is compacted to one line first; ` +
			`one that does not fit on a line because it is not JSON goes to the ` +
			`dead-letter stream. Other payloads are sent as they are, so a command ` +
			`may read plain text lines too. The command sees the payload only; ` +
			`the outputs keep the input's headers. It must flush its output after ` +
			`each line (in Python: print(..., flush=True)) and should exit when its ` +
			`standard input closes. Its environment is not sluice's, which may hold ` +
			`secrets (NATS credentials): it gets PATH, HOME and LANG (and SYSTEMROOT ` +
			`on Windows) from sluice, and the variables env sets, where ${VAR} ` +
			`passes one of sluice's on purpose.

A pipeline deployed to a worker may use exec only if the worker allows ` +
			`it (sluice worker --allow-exec).

Each line the command writes to its standard error is logged at level ` +
			`info with the stage's attributes. When the command exits, closes its ` +
			`standard output, or gives no answer within timeout, the record in ` +
			`flight fails with an error saying how the command ended and the last ` +
			`line it wrote to standard error. Such a failure is the record's: it ` +
			`is retried with the pipeline's backoff (dead-lettered after ` +
			`max_deliver, as any retried error), even when the same record fails ` +
			`again and again, unless since the command last answered a record it ` +
			`failed on a different record, or exited between records, before: ` +
			`then the command is out of order, and this failure and every one ` +
			`after it until the command answers a record again are an outage, as ` +
			`is a command that cannot be started again (not found, not ` +
			`executable): the runner holds the stage, keeping its records and ` +
			`trying again until the command works, and dead-letters none of ` +
			`them. So a command that dies (or times out) on one record and ` +
			`answers the next blames that record; one that fails on two ` +
			`different records in a row, or exits at start, holds the stage. The ` +
			`command is started again for the next record, restart_backoff_min ` +
			`after the failure, a delay that doubles with each failure in a row up ` +
			`to restart_backoff_max and starts over once the command answers a ` +
			`record or a process has run for a minute. A command that cannot be started at all (not found, not ` +
			`executable) stops the run at start-up. Delivery is at-least-once: a ` +
			`record retried after a crash or a timeout reaches the command again.

When the run ends, sluice closes the command's standard input, waits ` +
			`close_timeout for it to exit, then kills it. On Unix the command runs ` +
			`in a process group of its own, killed as a whole, so that a Ctrl-C at ` +
			`the terminal reaches sluice only, which finishes the records in ` +
			`flight before it closes the command.

Example:

    - name: enrich
      transform: exec
      replicas: 4
      with:
        command: python3
        args: [scripts/enrich.py, --country-table, data/countries.csv]
        env: {PYTHONUNBUFFERED: "1"}
        timeout: 10s`,
		Params: []stages.Param{
			{Name: "command", Type: stages.TypeString, Required: true, Doc: "The program to run: a name looked up in PATH, or a path to it (relative to dir when dir is set). No shell is involved: to run a pipeline of commands, run sh with args [-c, '...']."},
			{Name: "args", Type: stages.TypeStringList, Doc: "Arguments passed to the command as they are."},
			{Name: "env", Type: stages.TypeStringMap, Doc: "The command's environment, besides PATH, HOME and LANG taken from sluice (and replaced by those of the same name here): nothing else of sluice's environment reaches the command. Use ${VAR} to pass a variable on."},
			{Name: "dir", Type: stages.TypeString, Path: true, Doc: "Working directory of the command; default sluice's."},
			{Name: "timeout", Type: stages.TypeDuration, Default: execDefaultTimeout, Doc: "How long the command may take to answer one record (the first after a start includes the command's start-up); after it the command is killed and restarted and the record retried."},
			{Name: "restart_backoff_min", Type: stages.TypeDuration, Default: execDefaultBackoffMin, Doc: "Delay before the command is started again after it failed; it doubles with each failure in a row."},
			{Name: "restart_backoff_max", Type: stages.TypeDuration, Default: execDefaultBackoffMax, Doc: "Longest delay before the command is started again."},
			{Name: "close_timeout", Type: stages.TypeDuration, Default: execDefaultCloseTimeout, Doc: "How long the command has to exit after its standard input closed at the end of the run (or after it failed) before it is killed."},
		},
		Check:        checkExec,
		RunsCommands: true,
		NewTransform: newExecTransform,
	}
}

// inheritedEnv lists the variables the command gets from sluice's
// environment: what finds programs and picks a language, nothing that
// could hold a secret. Windows needs SYSTEMROOT to start most programs.
var inheritedEnv = []string{"PATH", "HOME", "LANG", "SYSTEMROOT"}

// childEnv returns the environment of the command: the variables of
// inheritedEnv that lookup finds, then extra (the env parameter), which
// wins over them.
func childEnv(lookup func(string) (string, bool), extra map[string]string) []string {
	env := make([]string, 0, len(inheritedEnv)+len(extra))
	for _, k := range inheritedEnv {
		if _, set := extra[k]; set {
			continue
		}
		if v, ok := lookup(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		env = append(env, k+"="+extra[k])
	}
	return env
}

func checkExec(p stages.Params) error {
	if strings.TrimSpace(p.String("command")) == "" {
		return stages.ParamErrorf("command", "must not be empty")
	}
	if d := p.Duration("timeout"); d <= 0 {
		return stages.ParamErrorf("timeout", "must be more than 0 (got %s)", d)
	}
	lo, hi := p.Duration("restart_backoff_min"), p.Duration("restart_backoff_max")
	if lo <= 0 {
		return stages.ParamErrorf("restart_backoff_min", "must be more than 0 (got %s)", lo)
	}
	if hi < lo {
		return stages.ParamErrorf("restart_backoff_max", "must be at least restart_backoff_min (got %s < %s)", hi, lo)
	}
	for _, k := range slices.Sorted(maps.Keys(p.StringMap("env"))) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return stages.ParamErrorf("env", "variable name %q must be non-empty, without '=' or NUL", k)
		}
		if strings.ContainsRune(p.StringMap("env")[k], 0) {
			return stages.ParamErrorf("env", "value of %s holds a NUL byte", k)
		}
	}
	return nil
}

// execTransform runs records through a child process. Process and Close
// are not safe for concurrent use (the runner calls them from one worker).
type execTransform struct {
	command string
	args    []string
	env     []string
	dir     string
	timeout time.Duration
	// restart is the delay before a restart after failures in a row.
	restart      retry.Backoff
	closeTimeout time.Duration
	log          *slog.Logger

	child     *execChild // the running process; nil after a failure until restarted
	failures  int        // failures in a row, for the restart delay
	notBefore time.Time  // earliest time of the next start
	// lastFail is the line of the record a process last failed on since
	// the command last answered a record; empty but not nil when a
	// process failed between records; nil when none failed. down is set
	// when the command is out of order: until it answers a record, its
	// failures are outages. See judge.
	lastFail []byte
	down     bool
	buf      bytes.Buffer
	timer    *time.Timer
	closed   bool
}

var _ stages.Transform = (*execTransform)(nil)

// errExecClosed is returned by Process after Close.
var errExecClosed = errors.New("exec: transform is closed")

func newExecTransform(p stages.Params, info stages.Info) (stages.Transform, error) {
	if err := checkExec(p); err != nil {
		return nil, err
	}
	env := childEnv(os.LookupEnv, p.StringMap("env"))
	if dir := p.String("dir"); dir != "" {
		// Checked here: starting in a missing directory fails with an
		// error that names the command instead.
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			if err == nil {
				err = errors.New("not a directory")
			}
			return nil, fmt.Errorf("exec: dir %q: %w", dir, err)
		}
	}
	log := info.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &execTransform{
		command:      p.String("command"),
		args:         p.Strings("args"),
		env:          env,
		dir:          p.String("dir"),
		timeout:      p.Duration("timeout"),
		restart:      retry.Backoff{Min: p.Duration("restart_backoff_min"), Max: p.Duration("restart_backoff_max")},
		closeTimeout: p.Duration("close_timeout"),
		log:          log.With("worker", info.Worker),
		timer:        time.NewTimer(time.Hour),
	}
	t.timer.Stop()
	// Start now, so that a command that cannot start stops the run before
	// it reads anything.
	c, err := t.spawn()
	if err != nil {
		return nil, err
	}
	t.child = c
	return t, nil
}

// Process sends the record to the command and turns its answer into
// outputs. A command that fails on the record gives a retryable error,
// or an outage (see [stages.ErrOutage]) when the command is out of order
// (see judge) or cannot be started again; an answer that is not a record
// gives a permanent error.
func (t *execTransform) Process(ctx context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	if t.closed {
		return out, errExecClosed
	}
	payload, err := in.Payload()
	if err != nil {
		return out, err
	}
	if err := t.encode(payload); err != nil {
		return out, err
	}
	c, err := t.ready(ctx)
	if err != nil {
		return out, err
	}
	answer, err := t.exchange(ctx, c)
	if err != nil {
		return out, err
	}
	// The command answered: it works, and the next failure waits the
	// shortest delay again (a few bad records must not add up to a long
	// pause for the good ones between them).
	t.failures = 0
	t.lastFail, t.down = nil, false
	return t.decode(answer, in, out)
}

// judge returns the error for the record in t.buf, on which a process of
// the command failed with err (it exited, closed its stdout or gave no
// answer in time). The rule: a failure is the record's fault, a plain
// error retried as the pipeline retries records, unless the command
// failed, since it last answered a record, on a different record (or
// between records) before: then the command is out of order, and this
// failure and every one after it until the command answers a record are
// outages. So a command that dies on one record and answers the next is
// that record's fault, even on every delivery of that record; a command
// that dies on two different records in a row is down.
func (t *execTransform) judge(err error) error {
	line := t.buf.Bytes()
	switch {
	case t.down:
	case t.lastFail != nil && !bytes.Equal(t.lastFail, line):
		t.down = true
	default:
		t.lastFail = append(t.lastFail[:0], line...)
		return err
	}
	return stages.Outage(fmt.Errorf("%w; it failed on another record before it, without answering one in between: the command is out of order", err))
}

// encode puts payload into t.buf as one line.
func (t *execTransform) encode(payload []byte) error {
	t.buf.Reset()
	if bytes.ContainsAny(payload, "\r\n") {
		// Line breaks in JSON are whitespace between tokens (inside
		// strings they are escaped), so compacting removes them.
		if err := json.Compact(&t.buf, payload); err != nil {
			return stages.Permanent(fmt.Errorf("exec: the record spans several lines and is not JSON, so it cannot be sent as one line: %w", err))
		}
	} else {
		t.buf.Write(payload)
	}
	t.buf.WriteByte('\n')
	return nil
}

// ready returns a running process, starting one if there is none (after
// the restart delay) or if the one there died between records.
func (t *execTransform) ready(ctx context.Context) (*execChild, error) {
	if c := t.child; c != nil {
		why := c.idle(t.log)
		if why == "" {
			return c, nil
		}
		t.child = nil
		t.broke(c, why, t.closeTimeout)
		if t.lastFail == nil {
			t.lastFail = []byte{} // a failure, on no record
		}
	}
	if d := time.Until(t.notBefore); d > 0 {
		t.timer.Reset(d)
		select {
		case <-t.timer.C:
		case <-ctx.Done():
			t.timer.Stop()
			return nil, fmt.Errorf("exec: waiting %s to start command %q again: %w", d.Round(time.Millisecond), t.command, context.Cause(ctx))
		}
	}
	c, err := t.spawn()
	if err != nil {
		t.failed(time.Time{})
		t.log.Warn("command did not start", "command", t.command, "err", err, "retry_in", t.backoff())
		t.down = true
		return nil, stages.Outage(err)
	}
	t.child = c
	return c, nil
}

// exchange writes t.buf to c and reads the answer. On any failure it
// discards c; a failure of the command returns the error judge gives.
func (t *execTransform) exchange(ctx context.Context, c *execChild) (execLine, error) {
	select {
	case c.send <- t.buf.Bytes():
	case <-ctx.Done(): // the writer takes a line at once, but ctx comes first
		t.child = nil
		c.stop(0)
		return execLine{}, fmt.Errorf("exec: %w", context.Cause(ctx))
	}
	t.timer.Reset(t.timeout)
	defer t.timer.Stop()
	var answer execLine
	wrote, lines := c.wrote, c.lines
	for wrote != nil || lines != nil {
		select {
		case err := <-wrote:
			if err != nil {
				t.child = nil
				return execLine{}, t.judge(t.broke(c, c.ended("did not take the record on its stdin ("+err.Error()+")", t.closeTimeout), t.closeTimeout))
			}
			wrote = nil
		case l, ok := <-lines:
			if !ok {
				t.child = nil
				return execLine{}, t.judge(t.broke(c, c.ended("closed its stdout before answering", t.closeTimeout), t.closeTimeout))
			}
			answer, lines = l, nil
		case <-t.timer.C:
			t.child = nil
			return execLine{}, t.judge(t.broke(c, "gave no answer within "+t.timeout.String(), 0))
		case <-ctx.Done():
			// The answer may still come: the process is out of step
			// with the records, so it goes.
			t.child = nil
			c.stop(0)
			return execLine{}, fmt.Errorf("exec: stopped waiting for command %q to answer: %w", t.command, context.Cause(ctx))
		}
	}
	return answer, nil
}

// broke stops c, which failed, (unless it is stopped already) schedules
// the restart and returns the error for the record in flight: how c ended
// and what it last wrote to stderr.
func (t *execTransform) broke(c *execChild, what string, grace time.Duration) error {
	c.stop(grace)
	t.failed(c.started)
	status := c.status()
	msg := fmt.Sprintf("exec: command %q %s", t.command, what)
	if status != "" {
		msg += " (" + status + ")"
	}
	if last := c.stderr.lastLine(); last != "" {
		msg += "; it last wrote to stderr: " + quoteLine([]byte(last))
	}
	t.log.Warn("command failed, restarting it", "command", t.command, "how", what, "status", status, "retry_in", t.backoff())
	return errors.New(msg)
}

// failed counts a failure of a process started at started (zero if it
// did not start) and sets when the next may start.
func (t *execTransform) failed(started time.Time) {
	if !started.IsZero() && time.Since(started) >= execHealthy {
		t.failures = 0
	}
	t.failures++
	t.notBefore = time.Now().Add(t.backoff())
}

// backoff returns the restart delay after t.failures failures in a row:
// restart_backoff_min, doubled for each failure after the first, at most
// restart_backoff_max.
func (t *execTransform) backoff() time.Duration {
	return t.restart.Delay(max(t.failures-1, 0))
}

// decode turns the command's answer to in into outputs.
func (t *execTransform) decode(l execLine, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	if l.tooLong {
		return out, stages.Permanent(fmt.Errorf("exec: command %q answered with a line longer than %d MiB", t.command, execMaxLine>>20))
	}
	b := bytes.TrimSpace(l.b)
	v, err := stages.DecodeJSON(b)
	if err != nil {
		// The answer is quoted whole: the reason alone says enough.
		reason := err.Error()
		if je := (*stages.JSONError)(nil); errors.As(err, &je) {
			reason = je.Reason
		}
		return out, stages.Permanent(fmt.Errorf("exec: command %q answered %s: not JSON (%s)", t.command, quoteLine(l.b), reason))
	}
	switch x := v.(type) {
	case nil:
		return out, nil
	case map[string]any:
		// Keep the command's bytes and the value decoded from them.
		in.SetPayloadValue(b, x)
		return append(out, in), nil
	case []any:
		for i, e := range x {
			if _, ok := e.(map[string]any); !ok {
				return out, stages.Permanent(fmt.Errorf("exec: command %q answered %s: element %d is a JSON %s, not an object", t.command, quoteLine(l.b), i, errtext.JSONKind(e)))
			}
		}
		for _, e := range x {
			out = append(out, in.Derive(e))
		}
		return out, nil
	case string:
		return out, stages.Permanent(fmt.Errorf("exec: command %q rejected the record: %s", t.command, quoteLine([]byte(x))))
	}
	return out, stages.Permanent(fmt.Errorf("exec: command %q answered %s: a JSON %s, not an object, an array of objects or null", t.command, quoteLine(l.b), errtext.JSONKind(v)))
}

// Close closes the command's stdin, gives it close_timeout (within ctx's
// deadline) to exit, then kills it. It waits for every goroutine of the
// transform. Having to kill the command is logged, not returned: every
// record it answered is already in the pipeline.
func (t *execTransform) Close(ctx context.Context) error {
	if t.closed {
		return nil
	}
	t.closed = true
	t.timer.Stop()
	c := t.child
	t.child = nil
	if c == nil {
		return nil
	}
	grace := t.closeTimeout
	if dl, ok := ctx.Deadline(); ok {
		grace = max(min(grace, time.Until(dl)), 0)
	}
	if c.stop(grace) {
		t.log.Warn("command did not exit after its stdin closed; killed it", "command", t.command, "waited", grace)
	}
	return nil
}

// quoteLine quotes the start of a line the command wrote, for an error.
func quoteLine(b []byte) string {
	b = bytes.TrimRight(b, "\r\n")
	if len(b) <= execQuoteMax {
		return strconv.Quote(string(b))
	}
	cut := execQuoteMax
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return strconv.Quote(string(b[:cut])) + fmt.Sprintf("… (%d bytes)", len(b))
}

// execChild is one process of the command with the goroutines that feed
// it records, read its answers and wait for its exit.
type execChild struct {
	cmd     *exec.Cmd
	stdin   *os.File // the write end of the command's stdin
	stdout  *os.File // the read end of the command's stdout
	stderr  *stderrLog
	started time.Time

	send    chan []byte    // lines for the writer
	wrote   chan error     // the writer's result, one per line sent
	lines   chan execLine  // answers read; closed at the end of stdout
	exited  chan struct{}  // closed once Wait returned
	waitErr error          // Wait's error; read after exited is closed
	done    chan struct{}  // closed to stop the reader and the writer
	wg      sync.WaitGroup // the goroutines
	stopped bool           // stop was called
	killed  bool           // stop killed the process
}

// execLine is a line the command wrote on stdout, without its line break.
type execLine struct {
	b       []byte
	tooLong bool // over execMaxLine: b is empty
}

// spawn starts a process of the command.
func (t *execTransform) spawn() (*execChild, error) {
	cmd := exec.Command(t.command, t.args...)
	if cmd.Err != nil {
		return nil, fmt.Errorf("exec: command %q: %w", t.command, cmd.Err)
	}
	cmd.Dir = t.dir
	cmd.Env = t.env
	cmd.WaitDelay = execWaitDelay
	setProcessGroup(cmd)
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("exec: command %q: stdin pipe: %w", t.command, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("exec: command %q: stdout pipe: %w", t.command, err)
	}
	c := &execChild{
		cmd:    cmd,
		stdin:  inW,
		stdout: outR,
		stderr: &stderrLog{log: t.log},
		send:   make(chan []byte),
		wrote:  make(chan error, 1),
		lines:  make(chan execLine),
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, c.stderr
	err = cmd.Start()
	// The process has its own copies of the ends it uses.
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("exec: start command %q: %w", t.command, err)
	}
	c.started = time.Now()
	t.log.Info("command started", "command", t.command, "pid", cmd.Process.Pid)
	c.wg.Add(3)
	go c.wait()
	go c.read()
	go c.write()
	return c, nil
}

func (c *execChild) wait() {
	defer c.wg.Done()
	c.waitErr = c.cmd.Wait()
	close(c.exited)
}

// read sends each line of the command's stdout to c.lines until stdout
// ends. A last line without a line break is dropped: the command died
// while writing it.
func (c *execChild) read() {
	defer c.wg.Done()
	defer close(c.lines)
	r := bufio.NewReaderSize(c.stdout, 64<<10)
	for {
		l, err := readLine(r)
		if err != nil {
			return
		}
		select {
		case c.lines <- l:
		case <-c.done:
			return
		}
	}
}

// readLine reads up to and without the next "\n" (and a "\r" before it).
func readLine(r *bufio.Reader) (execLine, error) {
	var l execLine
	for {
		frag, err := r.ReadSlice('\n')
		if !l.tooLong {
			if len(l.b)+len(frag) > execMaxLine+2 {
				l.b, l.tooLong = nil, true
			} else {
				l.b = append(l.b, frag...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			return execLine{}, err
		}
		l.b = bytes.TrimSuffix(bytes.TrimSuffix(l.b, []byte("\n")), []byte("\r"))
		return l, nil
	}
}

// write writes the lines sent to it to the command's stdin.
func (c *execChild) write() {
	defer c.wg.Done()
	for {
		select {
		case b := <-c.send:
			_, err := c.stdin.Write(b)
			select {
			case c.wrote <- err: // room for one: a line is sent only after the last result was taken
			case <-c.done:
				return
			}
		case <-c.done:
			return
		}
	}
}

// idle checks c between records: it returns why c cannot take a record
// (it exited or closed its stdout), or "". Lines the command wrote that no
// record asked for are dropped.
func (c *execChild) idle(log *slog.Logger) string {
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return "closed its stdout"
			}
			log.Warn("command wrote a line no record asked for; dropped it", "bytes", len(l.b))
		case <-c.exited:
			return "exited"
		default:
			return ""
		}
	}
}

// ended returns what to say of c when it failed on a record: that it
// exited, if it does so within a second (or grace if shorter), or else
// what.
func (c *execChild) ended(what string, grace time.Duration) string {
	if c.exitedWithin(min(grace, time.Second)) {
		return "exited before answering"
	}
	return what
}

// exitedWithin reports whether the process exits within d.
func (c *execChild) exitedWithin(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.exited:
		return true
	case <-t.C:
		return false
	}
}

// stop closes the command's stdin, waits up to grace for it to exit,
// kills it (with its process group) if it has not, and waits for every
// goroutine of c. It reports whether it killed the command.
// Calls after the first return what the first did.
func (c *execChild) stop(grace time.Duration) (killed bool) {
	if c.stopped {
		return c.killed
	}
	c.stopped = true
	c.stdin.Close()
	if grace > 0 {
		c.exitedWithin(grace)
	}
	select {
	case <-c.exited:
	default:
		killed = true
		killProcess(c.cmd)
		<-c.exited // Wait reaps it; WaitDelay bounds the wait for stderr
	}
	c.stdout.Close()
	close(c.done)
	c.wg.Wait()
	c.stderr.flush()
	c.killed = killed
	return killed
}

// status says how a stopped process ended: "exit status 3", "signal:
// killed".
func (c *execChild) status() string {
	if ps := c.cmd.ProcessState; ps != nil {
		return ps.String()
	}
	if c.waitErr != nil {
		return c.waitErr.Error()
	}
	return ""
}

// stderrLog logs what the command writes to stderr, line by line, and
// keeps the last line for errors.
type stderrLog struct {
	log     *slog.Logger
	mu      sync.Mutex
	partial []byte
	last    string
}

var _ io.Writer = (*stderrLog)(nil)

func (s *stderrLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		room := execMaxStderrLine - len(s.partial)
		switch {
		case i >= 0 && i <= room:
			s.partial = append(s.partial, p[:i]...)
			p = p[i+1:]
		case len(p) <= room:
			s.partial = append(s.partial, p...)
			return n, nil
		default: // a line too long for one entry: log what fits
			s.partial = append(s.partial, p[:room]...)
			p = p[room:]
		}
		s.emit()
	}
	return n, nil
}

// emit logs the line in s.partial; s.mu is held.
func (s *stderrLog) emit() {
	line := strings.TrimRight(string(s.partial), "\r")
	s.partial = s.partial[:0]
	if strings.TrimSpace(line) == "" {
		return
	}
	s.last = line
	s.log.Info("command stderr", "line", line)
}

// flush logs a last line that had no line break.
func (s *stderrLog) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.partial) > 0 {
		s.emit()
	}
}

// lastLine returns the last line logged.
func (s *stderrLog) lastLine() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}
