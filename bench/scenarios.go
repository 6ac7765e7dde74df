package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/server"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// Scenario names, as they appear in the report.
const (
	scBaselineHop   = "baseline-hop"
	scSluiceHopExpr = "sluice-hop-expr"
	scSluiceHopGo   = "sluice-hop-go"
	scBaselineChain = "baseline-chain3"
	scSluiceChain   = "sluice-chain3"       // fusion off: a stream between every two stages
	scSluiceFused   = "sluice-chain3-fused" // the four stages fused in m1's workers
	scSluiceLatency = "sluice-latency"
)

// The transforms, the same in every variant.
const (
	exprDouble = `merge($env, {"amount": amount * 2})`
	exprKeep   = `amount >= 0`
	exprShip   = `merge($env, {"status": "shipped"})`
)

// bench is one benchmark session: one embedded server, one data set.
type bench struct {
	emb  *server.Server
	ctl  *nats.Conn // the harness's own connection: set-up, pre-fill, polling
	js   jetstream.JetStream
	data *Dataset
	reg  *stages.Registry // built-ins plus double_amount

	baselineBatch int
	baselinePull  string

	mu    sync.Mutex
	seq   int      // makes stream and pipeline names unique
	notes []string // differences worth a line in the report
}

// shape is what a throughput run is parameterised by.
type shape struct {
	storage  string // "file" or "memory"
	replicas int    // workers per stage
	n        int    // records
}

func (s shape) String() string { return fmt.Sprintf("%s r=%d n=%d", s.storage, s.replicas, s.n) }

// maxBuffer is the max_buffer of every stream of a scenario: the whole
// pre-filled input must fit, since a full stream refuses publishes.
func (s shape) maxBuffer() int { return max(s.n, pipeline.DefaultMaxBuffer) }

// timeout bounds one scenario, set-up and pre-fill included, so that a
// stuck run fails with a message instead of hanging.
func (s shape) timeout() time.Duration {
	return time.Duration(s.n/1000)*time.Second + time.Minute
}

func newBench(emb *server.Server, data *Dataset, batch int, pull string) (*bench, error) {
	ctl, err := emb.Connect(nats.Name("sluice-bench-control"))
	if err != nil {
		return nil, fmt.Errorf("control connection: %w", err)
	}
	js, err := jetstream.New(ctl)
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("control connection: %w", err)
	}
	reg := builtin.NewRegistry()
	if err := reg.Register(doubleAmountSpec()); err != nil {
		ctl.Close()
		return nil, fmt.Errorf("register double_amount: %w", err)
	}
	return &bench{emb: emb, ctl: ctl, js: js, data: data, reg: reg, baselineBatch: batch, baselinePull: pull}, nil
}

func (b *bench) close() { b.ctl.Close() }

// name returns a name no earlier scenario of this session used.
func (b *bench) name(kind string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	return fmt.Sprintf("%s-%d", kind, b.seq)
}

// note records a remark for the report, once.
func (b *bench) note(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := fmt.Sprintf(format, args...)
	if !slices.Contains(b.notes, s) {
		b.notes = append(b.notes, s)
	}
}

// dataConn opens the connection the timed code runs on: one per scenario
// for either side, like a process of its own would have.
// Asynchronous errors (a slow consumer, say) become notes of the report.
func (b *bench) dataConn() (*nats.Conn, error) {
	nc, err := b.emb.Connect(nats.Name("sluice-bench-data"),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				b.note("data connection, subscription on %s: %v", sub.Subject, err)
				return
			}
			b.note("data connection: %v", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("data connection: %w", err)
	}
	return nc, nil
}

// goErr runs f in a goroutine and returns a channel that receives its
// result; the caller owns the goroutine and must receive once.
func goErr(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// ---- the hop ----

// baselineHop times the hand-written hop over sh.n pre-filled records.
func (b *bench) baselineHop(ctx context.Context, sh shape, prof bool) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, sh.timeout())
	defer cancel()
	id := strings.ToUpper(strings.ReplaceAll(b.name("base"), "-", "_"))
	in := stageStreamConfig("BENCH_"+id+"_IN", "bench."+id+".in", sh.storage, sh.maxBuffer())
	out := stageStreamConfig("BENCH_"+id+"_HOP", "bench."+id+".hop", sh.storage, sh.maxBuffer())
	defer b.cleanup(in.Name, out.Name)
	if err := b.createStreams(ctx, []jetstream.StreamConfig{in, out}, []string{"hop"}); err != nil {
		return sample{}, err
	}
	if err := prefill(ctx, b.ctl, in.Subjects[0], "prefill/", b.data.first(sh.n)); err != nil {
		return sample{}, err
	}
	nc, err := b.dataConn()
	if err != nil {
		return sample{}, err
	}
	defer nc.Close()

	pr := startProbe(prof)
	hopCtx, stop := context.WithCancel(ctx)
	done := goErr(func() error {
		return runBaselineHop(hopCtx, nc, b.hopSpec(in.Name, "hop", out.Subjects[0], id, opDoubleAmount, sh.replicas))
	})
	end, waitErr := waitLastSeq(ctx, b.js, out.Name, uint64(sh.n), pollInterval(prof))
	s := pr.stop(end, sh.n)
	if waitErr != nil {
		waitErr = fmt.Errorf("%w (%s)", waitErr, consumerState(b.js, [2]string{in.Name, "hop"}))
	}
	stop()
	if err := errors.Join(waitErr, <-done); err != nil {
		return sample{}, fmt.Errorf("%s %s: %w", scBaselineHop, sh, err)
	}
	s.rssKiB = peakRSSKiB()
	return s, nil
}

// hopSpec describes one hand-written hop with the session's tuning.
func (b *bench) hopSpec(stream, durable, subject, id string, op hopOp, workers int) baselineHop {
	return baselineHop{
		stream:   stream,
		durable:  durable,
		subject:  subject,
		idPrefix: "bench/" + id + "/" + subject + "/",
		op:       op,
		workers:  workers,
		batch:    b.baselineBatch,
		pull:     b.baselinePull,
	}
}

// createStreams creates streams[i] and, for each name in durables, a
// durable consumer of that name on streams[i], reading its subject. The
// consumers must exist before the pre-fill: an interest stream keeps
// nothing that no consumer wants.
func (b *bench) createStreams(ctx context.Context, streams []jetstream.StreamConfig, durables []string) error {
	for _, cfg := range streams {
		if _, err := b.js.CreateStream(ctx, cfg); err != nil {
			return fmt.Errorf("create stream %s: %w", cfg.Name, err)
		}
	}
	for i, d := range durables {
		if _, err := b.js.CreateOrUpdateConsumer(ctx, streams[i].Name, stageConsumerConfig(d, streams[i].Subjects[0])); err != nil {
			return fmt.Errorf("create consumer %s on %s: %w", d, streams[i].Name, err)
		}
	}
	return nil
}

// cleanup deletes the streams of a finished scenario so that the store
// does not grow; a failure is noted, not fatal.
func (b *bench) cleanup(streams ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := deleteStreams(ctx, b.js, streams...); err != nil {
		b.note("cleanup: %v", err)
	}
}

// sluiceStreams returns the streams of pipeline p.
func sluiceStreams(p *pipeline.Pipeline) []string {
	names := []string{schema.DLQStreamName(p.Name)}
	for _, s := range p.Stages {
		if s.Role != stages.RoleSink {
			names = append(names, schema.StreamName(p.Name, s.Name))
		}
	}
	return names
}

// sluiceHop times `runner.Run` of the stage hop of src → hop, with the
// map expression (goTransform false) or the Go transform double_amount.
func (b *bench) sluiceHop(ctx context.Context, sh shape, goTransform, prof bool) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, sh.timeout())
	defer cancel()
	scenario, kind, hop := scSluiceHopExpr, "hop-expr", fmt.Sprintf("transform: map, with: {expr: '%s'}", exprDouble)
	if goTransform {
		scenario, kind, hop = scSluiceHopGo, "hop-go", "transform: double_amount"
	}
	name := b.name(kind)
	p, err := b.parse(name, sh, fmt.Sprintf(`
  - {name: src, source: generate}
  - {name: hop, %s, replicas: %d}`, hop, sh.replicas))
	if err != nil {
		return sample{}, err
	}
	defer b.cleanup(sluiceStreams(p)...)
	if err := runner.Provision(ctx, b.ctl, p); err != nil {
		return sample{}, fmt.Errorf("%s %s: %w", scenario, sh, err)
	}
	b.compareConfigs(ctx, p, "src", "hop", sh)
	if err := prefill(ctx, b.ctl, schema.Subject(name, "src"), name+"/src/r1/", b.data.first(sh.n)); err != nil {
		return sample{}, err
	}
	out := schema.StreamName(name, "hop")
	s, sum, err := b.timeRun(ctx, p, sh, []string{"hop"}, prof, func(ctx context.Context) (time.Time, error) {
		end, err := waitLastSeq(ctx, b.js, out, uint64(sh.n), pollInterval(prof))
		if err != nil {
			err = fmt.Errorf("%w (%s)", err, consumerState(b.js, [2]string{schema.StreamName(name, "src"), "hop"}))
		}
		return end, err
	})
	if err != nil {
		return sample{}, fmt.Errorf("%s %s: %w", scenario, sh, err)
	}
	if st := stageSummary(sum, "hop"); st.Out != uint64(sh.n) || st.DeadLetters != 0 {
		return sample{}, fmt.Errorf("%s %s: hop published %d of %d records, %d dead letters", scenario, sh, st.Out, sh.n, st.DeadLetters)
	}
	return s, nil
}

// parse builds a pipeline named name of the given stages with the
// scenario's storage and a buffer that holds the pre-filled input.
func (b *bench) parse(name string, sh shape, stageList string) (*pipeline.Pipeline, error) {
	src := fmt.Sprintf("name: %s\nsettings: {storage: %s, max_buffer: %d}\nstages:%s\n", name, sh.storage, sh.maxBuffer(), stageList)
	p, err := pipeline.Parse(name+".yaml", []byte(src), pipeline.Options{Registry: b.reg})
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", name, err)
	}
	return p, nil
}

// timeRun runs the stages of p named local on a connection of their own,
// timing from just before runner.Run to the moment waitEnd returns. Run
// returns after its own drain check; that tail is not timed, but Run must
// end cleanly.
func (b *bench) timeRun(ctx context.Context, p *pipeline.Pipeline, sh shape, local []string, prof bool,
	waitEnd func(context.Context) (time.Time, error)) (sample, *runner.Summary, error) {
	nc, err := b.dataConn()
	if err != nil {
		return sample{}, nil, err
	}
	defer nc.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var sum *runner.Summary
	pr := startProbe(prof)
	done := goErr(func() error {
		var err error
		sum, err = runner.Run(runCtx, nc, p, runner.Options{Registry: b.reg, Stages: local})
		return err
	})
	end, waitErr := waitEnd(ctx)
	s := pr.stop(end, sh.n)
	if waitErr != nil {
		stop() // the end never came: stop the run rather than wait for its drain
	}
	if err := errors.Join(waitErr, <-done); err != nil {
		return sample{}, nil, err
	}
	if sum.Interrupted {
		return sample{}, nil, errors.New("run interrupted before it drained")
	}
	s.rssKiB = peakRSSKiB()
	return s, sum, nil
}

func stageSummary(sum *runner.Summary, stage string) runner.StageSummary {
	for _, st := range sum.Stages {
		if st.Name == stage {
			return st
		}
	}
	return runner.StageSummary{}
}

// compareConfigs notes any difference that costs server time between what
// sluice provisioned for stage (reading from) and what the baseline uses.
func (b *bench) compareConfigs(ctx context.Context, p *pipeline.Pipeline, from, stage string, sh shape) {
	name := schema.StreamName(p.Name, stage)
	st, err := b.js.Stream(ctx, name)
	if err != nil {
		b.note("could not compare stream configs: %v", err)
		return
	}
	got, want := st.CachedInfo().Config, stageStreamConfig(name, "", sh.storage, sh.maxBuffer())
	for _, d := range []struct {
		field     string
		got, want any
	}{
		{"storage", got.Storage, want.Storage},
		{"retention", got.Retention, want.Retention},
		{"max_msgs", got.MaxMsgs, want.MaxMsgs},
		{"discard", got.Discard, want.Discard},
		{"duplicates", got.Duplicates, want.Duplicates},
		{"replicas", got.Replicas, want.Replicas},
		{"compression", got.Compression, want.Compression},
		{"allow_batch_publish", got.AllowBatchPublish, want.AllowBatchPublish},
	} {
		if d.got != d.want {
			b.note("stream config differs from the baseline's: %s is %v in sluice, %v in the baseline", d.field, d.got, d.want)
		}
	}
	c, err := b.js.Consumer(ctx, schema.StreamName(p.Name, from), schema.ConsumerName(stage))
	if err != nil {
		b.note("could not compare consumer configs: %v", err)
		return
	}
	gotC, wantC := c.CachedInfo().Config, stageConsumerConfig(stage, "")
	for _, d := range []struct {
		field     string
		got, want any
	}{
		{"ack_policy", gotC.AckPolicy, wantC.AckPolicy},
		{"ack_wait", gotC.AckWait, wantC.AckWait},
		{"max_ack_pending", gotC.MaxAckPending, wantC.MaxAckPending},
		{"max_deliver", gotC.MaxDeliver, wantC.MaxDeliver},
	} {
		if d.got != d.want {
			b.note("consumer config differs from the baseline's: %s is %v in sluice, %v in the baseline", d.field, d.got, d.want)
		}
	}
}

// ---- the 3-hop chain ----

// chainStages are the hops of the chain: name and the baseline's work.
var chainStages = []struct {
	name string
	op   hopOp
}{
	{"m1", opDoubleAmount},
	{"f", opKeepNonNegative},
	{"m2", opShip},
}

// baselineChain times three hand-written hops in a chain into an acking
// terminal consumer, over sh.n pre-filled records.
func (b *bench) baselineChain(ctx context.Context, sh shape) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, sh.timeout())
	defer cancel()
	id := strings.ToUpper(strings.ReplaceAll(b.name("base"), "-", "_"))
	streams := []jetstream.StreamConfig{stageStreamConfig("BENCH_"+id+"_IN", "bench."+id+".in", sh.storage, sh.maxBuffer())}
	durables := []string{}
	var names []string
	for _, st := range chainStages {
		name := strings.ToUpper(st.name)
		streams = append(streams, stageStreamConfig("BENCH_"+id+"_"+name, "bench."+id+"."+st.name, sh.storage, sh.maxBuffer()))
		durables = append(durables, st.name)
	}
	durables = append(durables, "out")
	for _, s := range streams {
		names = append(names, s.Name)
	}
	defer b.cleanup(names...)
	if err := b.createStreams(ctx, streams, durables); err != nil {
		return sample{}, err
	}
	if err := prefill(ctx, b.ctl, streams[0].Subjects[0], "prefill/", b.data.first(sh.n)); err != nil {
		return sample{}, err
	}
	nc, err := b.dataConn()
	if err != nil {
		return sample{}, err
	}
	defer nc.Close()

	pr := startProbe(false)
	hopCtx, stop := context.WithCancel(ctx)
	var hops []<-chan error
	for i, st := range chainStages {
		h := b.hopSpec(streams[i].Name, durables[i], streams[i+1].Subjects[0], id, st.op, sh.replicas)
		hops = append(hops, goErr(func() error { return runBaselineHop(hopCtx, nc, h) }))
	}
	term := b.hopSpec(streams[len(chainStages)].Name, "out", "", id, nil, sh.replicas)
	hops = append(hops, goErr(func() error { return runBaselineHop(hopCtx, nc, term) }))
	last := streams[len(streams)-1].Name
	end, waitErr := waitAcked(ctx, b.js, last, "out", uint64(sh.n), pollEvery)
	s := pr.stop(end, sh.n)
	if waitErr != nil {
		var cs [][2]string
		for i, d := range durables {
			cs = append(cs, [2]string{streams[i].Name, d})
		}
		waitErr = fmt.Errorf("%w (%s)", waitErr, consumerState(b.js, cs...))
	}
	stop()
	errs := []error{waitErr}
	for _, h := range hops {
		errs = append(errs, <-h)
	}
	if err := errors.Join(errs...); err != nil {
		return sample{}, fmt.Errorf("%s %s: %w", scBaselineChain, sh, err)
	}
	s.rssKiB = peakRSSKiB()
	return s, nil
}

// sluiceChain times src → m1 (map) → f (filter) → m2 (map) → out
// (discard), every stage but the source with sh.replicas workers: with
// fusion off, a stream between every two stages, as the baseline has;
// fused, one stream (the source's) and the rest run fused in m1's
// workers.
func (b *bench) sluiceChain(ctx context.Context, sh shape, fused bool) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, sh.timeout())
	defer cancel()
	scenario, name := scSluiceChain, b.name("chain")
	if fused {
		scenario = scSluiceFused
	}
	r := sh.replicas
	p, err := b.parse(name, sh, fmt.Sprintf(`
  - {name: src, source: generate}
  - {name: m1, transform: map, replicas: %d, with: {expr: '%s'}}
  - {name: f, transform: filter, replicas: %d, with: {expr: '%s'}}
  - {name: m2, transform: map, replicas: %d, with: {expr: '%s'}}
  - {name: out, sink: discard, replicas: %d}`, r, exprDouble, r, exprKeep, r, exprShip, r))
	if err != nil {
		return sample{}, err
	}
	if !fused {
		p.Settings.Fusion = pipeline.FusionOff
	}
	defer b.cleanup(sluiceStreams(p)...)
	if err := runner.Provision(ctx, b.ctl, p); err != nil {
		return sample{}, fmt.Errorf("%s %s: %w", scenario, sh, err)
	}
	if err := prefill(ctx, b.ctl, schema.Subject(name, "src"), name+"/src/r1/", b.data.first(sh.n)); err != nil {
		return sample{}, err
	}
	// The end: the sink took every record. Fused, m1 acknowledges its
	// inputs once the sink took what came of them.
	last, reader := schema.StreamName(name, "m2"), schema.ConsumerName("out")
	if fused {
		last, reader = schema.StreamName(name, "src"), schema.ConsumerName("m1")
	}
	s, sum, err := b.timeRun(ctx, p, sh, []string{"m1", "f", "m2", "out"}, false, func(ctx context.Context) (time.Time, error) {
		end, err := waitAcked(ctx, b.js, last, reader, uint64(sh.n), pollEvery)
		if err != nil {
			var cs [][2]string
			for _, st := range p.Stages {
				for _, in := range st.From {
					cs = append(cs, [2]string{schema.StreamName(name, in.Stage), schema.ConsumerName(st.Name)})
				}
			}
			err = fmt.Errorf("%w (%s)", err, consumerState(b.js, cs...))
		}
		return end, err
	})
	if err != nil {
		return sample{}, fmt.Errorf("%s %s: %w", scenario, sh, err)
	}
	if st := stageSummary(sum, "out"); st.Out != uint64(sh.n) {
		return sample{}, fmt.Errorf("%s %s: the sink wrote %d of %d records", scenario, sh, st.Out, sh.n)
	}
	return s, nil
}

// ---- latency ----

// latencyWarmUp is dropped from the start of a latency run.
const latencyWarmUp = time.Second

// latencyResult is the end-to-end latency of one run at one offered rate.
type latencyResult struct {
	storage        string
	rate           float64
	duration       time.Duration
	samples        int
	p50, p99, p999 time.Duration
	max            time.Duration
}

// latencySink records, for each message, the time since the "ts" field of
// its record (set by the source when it generated the record).
type latencySink struct {
	mu          sync.Mutex
	warmUpBelow int64 // records with a lower id are the warm-up
	lat         []time.Duration
	seen        int
	bad         int
}

var _ stages.Sink = (*latencySink)(nil)

var (
	tsKey = []byte(`"ts":"`)
	idKey = []byte(`"id":`)
)

func (s *latencySink) Write(_ context.Context, batch []*stages.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range batch {
		p, err := m.Payload()
		if err != nil {
			s.bad++
			continue
		}
		ts, id, ok := parseProbe(p)
		now := time.Now()
		s.seen++
		if !ok {
			s.bad++
			continue
		}
		if id >= s.warmUpBelow {
			s.lat = append(s.lat, now.Sub(ts))
		}
	}
	return nil
}

func (s *latencySink) Close(context.Context) error { return nil }

// parseProbe finds the "ts" and "id" fields of a record without decoding
// all of it, to keep the probe's own cost out of the figures.
func parseProbe(p []byte) (time.Time, int64, bool) {
	i := bytes.Index(p, tsKey)
	if i < 0 {
		return time.Time{}, 0, false
	}
	rest := p[i+len(tsKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, 0, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	if err != nil {
		return time.Time{}, 0, false
	}
	i = bytes.Index(p, idKey)
	if i < 0 {
		return time.Time{}, 0, false
	}
	rest = p[i+len(idKey):]
	j = bytes.IndexAny(rest, ",}")
	if j < 0 {
		return time.Time{}, 0, false
	}
	id, err := strconv.ParseInt(string(bytes.TrimSpace(rest[:j])), 10, 64)
	if err != nil {
		return time.Time{}, 0, false
	}
	return ts, id, true
}

// latency runs gen (generate at rate, for duration) → hop (map) → out (a
// sink recording latency) and reports the latency from the source's
// timestamp to the sink's Write, without the first second.
func (b *bench) latency(ctx context.Context, storage string, rate float64, duration time.Duration) (latencyResult, error) {
	count := int(rate * duration.Seconds())
	sh := shape{storage: storage, replicas: 1, n: count}
	ctx, cancel := context.WithTimeout(ctx, duration+sh.timeout())
	defer cancel()
	sink := &latencySink{warmUpBelow: int64(rate * latencyWarmUp.Seconds()), lat: make([]time.Duration, 0, count)}
	reg := b.reg.Clone()
	if err := reg.Register(stages.Spec{
		Name:    "latency_probe",
		Summary: "records the latency of each record from its ts field",
		NewSink: func(stages.Params, stages.Info) (stages.Sink, error) { return sink, nil },
	}); err != nil {
		return latencyResult{}, fmt.Errorf("register latency_probe: %w", err)
	}
	template := fmt.Sprintf(`merge(%s, {"id": seq, "ts": now()})`, b.data.Records[0])
	name := b.name("latency")
	src := fmt.Sprintf(`name: %s
settings: {storage: %s}
stages:
  - {name: gen, source: generate, with: {count: %d, rate: %g, template: '%s'}}
  - {name: hop, transform: map, with: {expr: '%s'}}
  - {name: out, sink: latency_probe}
`, name, storage, count, rate, template, exprDouble)
	p, err := pipeline.Parse(name+".yaml", []byte(src), pipeline.Options{Registry: reg})
	if err != nil {
		return latencyResult{}, fmt.Errorf("pipeline %s: %w", name, err)
	}
	defer b.cleanup(sluiceStreams(p)...)
	nc, err := b.dataConn()
	if err != nil {
		return latencyResult{}, err
	}
	defer nc.Close()
	sum, err := runner.Run(ctx, nc, p, runner.Options{Registry: reg})
	if err != nil {
		return latencyResult{}, fmt.Errorf("%s %s at %g/s: %w", scSluiceLatency, storage, rate, err)
	}
	if sum.Interrupted {
		return latencyResult{}, fmt.Errorf("%s %s at %g/s: run interrupted", scSluiceLatency, storage, rate)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.seen != count || sink.bad > 0 {
		return latencyResult{}, fmt.Errorf("%s %s at %g/s: the sink saw %d of %d records, %d unreadable", scSluiceLatency, storage, rate, sink.seen, count, sink.bad)
	}
	lat := sink.lat
	slices.Sort(lat)
	res := latencyResult{storage: storage, rate: rate, duration: duration, samples: len(lat)}
	if len(lat) > 0 {
		res.p50, res.p99, res.p999 = percentile(lat, 50), percentile(lat, 99), percentile(lat, 99.9)
		res.max = lat[len(lat)-1]
	}
	return res, nil
}

// ---- allocation attribution ----

// allocResult is where the allocations of one profiled run went.
type allocResult struct {
	scenario string
	storage  string
	n        int
	sites    map[allocSite]int64
}

// profileAllocs runs one scenario with every allocation recorded
// (runtime.MemProfileRate = 1) over the timed part.
func (b *bench) profileAllocs(ctx context.Context, scenario string, sh shape) (allocResult, error) {
	var s sample
	var err error
	switch scenario {
	case scBaselineHop:
		s, err = b.baselineHop(ctx, sh, true)
	case scSluiceHopExpr:
		s, err = b.sluiceHop(ctx, sh, false, true)
	case scSluiceHopGo:
		s, err = b.sluiceHop(ctx, sh, true, true)
	default:
		return allocResult{}, fmt.Errorf("no allocation profile for scenario %q", scenario)
	}
	if err != nil {
		return allocResult{}, err
	}
	return allocResult{scenario: scenario, storage: sh.storage, n: sh.n, sites: s.sites}, nil
}

// ---- the Go transform ----

// doubleAmountSpec is the Go transform of the sluice-hop-go scenario.
func doubleAmountSpec() stages.Spec {
	return stages.Spec{
		Name:         "double_amount",
		Summary:      "doubles amount, in Go with encoding/json",
		NewTransform: func(stages.Params, stages.Info) (stages.Transform, error) { return doubleAmount{}, nil },
	}
}

// doubleAmount is the hop's work as a performance-minded user writes it
// as a sluice transform: decode the payload into a struct, change a
// field, encode, hand the message on.
type doubleAmount struct{}

var _ stages.Transform = doubleAmount{}

func (doubleAmount) Process(_ context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	p, err := in.Payload()
	if err != nil {
		return out, err
	}
	var o Order
	if err := json.Unmarshal(p, &o); err != nil {
		return out, stages.Permanent(err)
	}
	o.Amount *= 2
	b, err := json.Marshal(&o)
	if err != nil {
		return out, stages.Permanent(err)
	}
	in.SetPayload(b)
	return append(out, in), nil
}

func (doubleAmount) Close(context.Context) error { return nil }
