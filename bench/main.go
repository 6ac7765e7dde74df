// Command bench measures sluice against a hand-written nats.go hop, on one
// embedded nats-server with one generated data set, and prints one
// Markdown table (also written to -out as latest.md and latest.json).
//
//	go run ./bench                       # everything, about 10 minutes on 2 cores
//	go run ./bench -only hop -runs 1     # a quick look
//
// Scenarios: baseline-hop, sluice-hop-expr and sluice-hop-go (one hop over
// pre-filled input), baseline-chain3 and sluice-chain3 (three hops into an
// acking consumer), each at every -storage and -replicas; sluice-latency at
// each of -rates; and an attribution of allocations to packages. See
// docs/performance.md.
//
// The soak group runs only when -only names it: one pipeline (generate at
// -rate → map → discard, default settings but -dedup-window) for -duration
// in this process,
// printing RSS, live heap and goroutines every -sample-every:
//
//	go run ./bench -only soak -duration 30m -rate 5000
//
// The scale-out group runs only when -only names it, as it builds and
// execs the sluice binary: one CPU-bound transform stage run by each of
// -processes `sluice worker` processes, on one `sluice server` process
// and on a 3-node cluster of them, about 5 minutes with -runs 3:
//
//	go run ./bench -only scaleout -runs 1
//
// The peers group runs only when -only names it, as it builds and execs
// sluice, a minimal Benthos and a plain Go program (the floor, both in the
// bench/peers module): the same ETL job of -n JSON-lines records from
// file to file, -runs times each, checking that the outputs agree:
//
//	go run ./bench -only peers
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/configs"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/server"
)

// Scenario groups of -only.
const (
	groupHop     = "hop"
	groupChain   = "chain"
	groupLatency = "latency"
	groupAllocs  = "allocs"
	// groupScaleout and groupSoak are not among the default groups.
	groupScaleout = "scaleout"
	groupSoak     = "soak"
	groupPeers    = "peers"
)

var (
	defaultGroups = []string{groupHop, groupChain, groupLatency, groupAllocs}
	allGroups     = append(slices.Clone(defaultGroups), groupScaleout, groupSoak, groupPeers)
)

// scenarioOrder is the order of the report's rows.
var scenarioOrder = []string{scBaselineHop, scSluiceHopExpr, scSluiceHopGo, scBaselineChain, scSluiceChain, scSluiceFused}

// config is the command line.
type config struct {
	n               int
	runs            int
	replicas        []int
	storages        []string
	groups          []string
	rates           []float64
	latencyDuration time.Duration
	allocN          int
	out             string
	baselineBatch   int
	baselinePull    string
	gcPercent       int
	memoryLimit     string
	soakRate        float64
	soakDuration    time.Duration
	soakEvery       time.Duration
	soakDedup       time.Duration
	processes       []int
	sluiceBin       string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	var replicas, storages, only, rates, processes string
	fs.IntVar(&c.n, "n", 200_000, "records per throughput run")
	fs.IntVar(&c.runs, "runs", 3, "runs of each throughput scenario; the report gives the median")
	fs.StringVar(&replicas, "replicas", "1,2,4", "comma-separated workers per stage")
	fs.StringVar(&storages, "storage", "file,memory", "comma-separated stream storage: file, memory")
	fs.StringVar(&only, "only", strings.Join(defaultGroups, ","), "comma-separated scenario groups: "+strings.Join(allGroups, ", "))
	fs.StringVar(&rates, "rates", "5000,20000", "comma-separated offered rates of the latency runs, msgs/s")
	fs.DurationVar(&c.latencyDuration, "latency-duration", 10*time.Second, "length of each latency run (the first second is warm-up)")
	fs.IntVar(&c.allocN, "alloc-n", 20_000, "records of the allocation-profiled runs")
	fs.StringVar(&c.out, "out", "bench/results", "directory for latest.md and latest.json")
	fs.IntVar(&c.baselineBatch, "baseline-batch", defaultBaselineBatch, "pull batch of the hand-written hop")
	fs.StringVar(&c.baselinePull, "baseline-pull", defaultBaselinePull, "pull style of the hand-written hop: messages or fetch")
	fs.StringVar(&processes, "processes", "1,2,4", "comma-separated counts of worker processes of the scaleout group")
	fs.StringVar(&c.sluiceBin, "sluice-bin", "", "sluice binary of the scaleout and peers groups (default: go build ./cmd/sluice into a temporary directory)")
	fs.IntVar(&c.gcPercent, "gc-percent", configs.DefaultGCPercent, "garbage collector target percentage, as `sluice run` applies it (GOGC wins when set); -1 is off")
	fs.StringVar(&c.memoryLimit, "memory-limit", configs.MemoryLimitAuto, "the Go runtime's soft memory limit, as `sluice run` applies its memory_limit (GOMEMLIMIT wins when set): auto, off or a size such as 512MiB")
	fs.Float64Var(&c.soakRate, "rate", 5000, "msgs/s of the soak group's source")
	fs.DurationVar(&c.soakDuration, "duration", 5*time.Minute, "length of the soak group's run")
	fs.DurationVar(&c.soakEvery, "sample-every", 10*time.Second, "how often the soak group samples memory")
	fs.DurationVar(&c.soakDedup, "dedup-window", pipeline.DefaultDedupWindow, "dedup_window of the soak group's pipeline")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.n >= 1, "-n must be >= 1 (got %d)", c.n)
	check(c.runs >= 1, "-runs must be >= 1 (got %d)", c.runs)
	check(c.allocN >= 1, "-alloc-n must be >= 1 (got %d)", c.allocN)
	check(c.latencyDuration > latencyWarmUp, "-latency-duration must be more than the %s warm-up (got %s)", latencyWarmUp, c.latencyDuration)
	check(c.baselineBatch >= 1, "-baseline-batch must be >= 1 (got %d)", c.baselineBatch)
	check(c.gcPercent == -1 || c.gcPercent >= 10, "-gc-percent must be -1 (off) or at least 10 (got %d)", c.gcPercent)
	check(c.soakDedup > 0, "-dedup-window must be > 0 (got %s)", c.soakDedup)
	check(c.soakRate > 0, "-rate must be > 0 (got %g)", c.soakRate)
	check(c.soakEvery > 0 && c.soakDuration >= c.soakEvery, "-duration must be at least -sample-every, which must be > 0 (got %s and %s)", c.soakDuration, c.soakEvery)
	if err := (configs.Settings{MemoryLimit: c.memoryLimit}).CheckMemoryLimit(); err != nil {
		errs = append(errs, fmt.Errorf("-memory-limit: %w", err))
	}
	check(c.baselinePull == pullMessages || c.baselinePull == pullFetch, "-baseline-pull must be %s or %s (got %q)", pullMessages, pullFetch, c.baselinePull)
	for _, s := range splitList(replicas) {
		r, err := strconv.Atoi(s)
		check(err == nil && r >= 1, "-replicas: %q is not a count >= 1", s)
		c.replicas = append(c.replicas, r)
	}
	for _, s := range splitList(processes) {
		p, err := strconv.Atoi(s)
		check(err == nil && p >= 1, "-processes: %q is not a count >= 1", s)
		c.processes = append(c.processes, p)
	}
	check(len(c.processes) > 0, "-processes must not be empty")
	for _, s := range splitList(storages) {
		check(s == "file" || s == "memory", "-storage: %q is not file or memory", s)
		c.storages = append(c.storages, s)
	}
	for _, s := range splitList(only) {
		check(slices.Contains(allGroups, s), "-only: unknown group %q (have %s)", s, strings.Join(allGroups, ", "))
		c.groups = append(c.groups, s)
	}
	for _, s := range splitList(rates) {
		r, err := strconv.ParseFloat(s, 64)
		check(err == nil && r > 0, "-rates: %q is not a rate > 0", s)
		c.rates = append(c.rates, r)
	}
	check(len(c.replicas) > 0 && len(c.storages) > 0 && len(c.groups) > 0, "-replicas, -storage and -only must not be empty")
	return c, errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (c *config) has(group string) bool { return slices.Contains(c.groups, group) }

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs the suite and returns the exit code: 0, 1 when a scenario
// failed, 2 for bad flags.
func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := runSuite(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, rep.Markdown())
	if err := rep.write(cfg.out); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "bench: results in %s/latest.md and latest.json\n", cfg.out)
	return 0
}

// runSuite starts the server, generates the data and runs the selected
// groups; progress goes to log.
func runSuite(ctx context.Context, cfg *config, log io.Writer) (*Report, error) {
	began := time.Now()
	// Both sides share the process, so the setting applies to both alike.
	gc := configs.Settings{GCPercent: cfg.gcPercent}.ApplyGC()
	limit, limitFrom := configs.Settings{MemoryLimit: cfg.memoryLimit}.ApplyMemoryLimit()
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, fmt.Errorf("store directory: %w", err)
	}
	defer os.RemoveAll(dir)
	emb, err := server.Start(server.Options{StoreDir: dir})
	if err != nil {
		return nil, err
	}
	defer emb.Shutdown()

	dataN := 1
	if cfg.has(groupHop) || cfg.has(groupChain) {
		dataN = max(dataN, cfg.n)
	}
	if cfg.has(groupAllocs) {
		dataN = max(dataN, cfg.allocN)
	}
	data, err := NewDataset(dataN)
	if err != nil {
		return nil, fmt.Errorf("data set: %w", err)
	}
	fmt.Fprintf(log, "bench: %d records, %.1f bytes on average; store %s\n", dataN, data.MeanBytes, dir)
	b, err := newBench(emb, data, cfg.baselineBatch, cfg.baselinePull)
	if err != nil {
		return nil, err
	}
	defer b.close()

	rep := &Report{
		Machine:         machine(),
		N:               cfg.n,
		Runs:            cfg.runs,
		MeanRecordBytes: data.MeanBytes,
		Baseline:        BaselineTuning{Batch: cfg.baselineBatch, Pull: cfg.baselinePull},
	}
	rep.Machine.GCPercent = gc
	rep.Machine.MemoryLimitMiB = -1
	if limit > 0 {
		rep.Machine.MemoryLimitMiB = float64(limit) / (1 << 20)
	}
	samples := make(map[throughputKey][]sample)
	type timed struct {
		scenario string
		run      func(context.Context, shape) (sample, error)
	}
	throughput := func(group string, scenarios []timed) error {
		for _, storage := range cfg.storages {
			for _, r := range cfg.replicas {
				sh := shape{storage: storage, replicas: r, n: cfg.n}
				for run := range cfg.runs {
					// Each run starts with another scenario, so that no
					// scenario always comes first after a pause.
					for i := range scenarios {
						sc := scenarios[(run+i)%len(scenarios)]
						s, err := sc.run(ctx, sh)
						if err != nil {
							return fmt.Errorf("%s: %w", group, err)
						}
						k := throughputKey{sc.scenario, storage, r}
						samples[k] = append(samples[k], s)
						fmt.Fprintf(log, "bench: %-16s %-6s r=%d run %d/%d: %9.0f msgs/s, %.1f allocs/msg, others' CPU %.2f\n",
							sc.scenario, storage, r, run+1, cfg.runs, s.rate(cfg.n), float64(s.mallocs)/float64(cfg.n), s.otherCPU)
					}
				}
			}
		}
		return nil
	}
	if cfg.has(groupHop) {
		err := throughput(groupHop, []timed{
			{scBaselineHop, func(ctx context.Context, sh shape) (sample, error) { return b.baselineHop(ctx, sh, false) }},
			{scSluiceHopExpr, func(ctx context.Context, sh shape) (sample, error) { return b.sluiceHop(ctx, sh, false, false) }},
			{scSluiceHopGo, func(ctx context.Context, sh shape) (sample, error) { return b.sluiceHop(ctx, sh, true, false) }},
		})
		if err != nil {
			return nil, err
		}
	}
	if cfg.has(groupChain) {
		err := throughput(groupChain, []timed{
			{scBaselineChain, b.baselineChain},
			{scSluiceChain, func(ctx context.Context, sh shape) (sample, error) { return b.sluiceChain(ctx, sh, false) }},
			{scSluiceFused, func(ctx context.Context, sh shape) (sample, error) { return b.sluiceChain(ctx, sh, true) }},
		})
		if err != nil {
			return nil, err
		}
	}
	rep.Throughput = throughputRows(samples, cfg.n, scenarioOrder)

	if cfg.has(groupLatency) {
		for _, storage := range cfg.storages {
			for _, rate := range cfg.rates {
				res, err := b.latency(ctx, storage, rate, cfg.latencyDuration)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", groupLatency, err)
				}
				fmt.Fprintf(log, "bench: %-16s %-6s %6.0f/s: p50 %s p99 %s p99.9 %s\n", scSluiceLatency, storage, rate,
					res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.p999.Round(time.Microsecond))
				rep.Latency = append(rep.Latency, latencyRow(res))
			}
		}
	}
	if cfg.has(groupAllocs) {
		sh := shape{storage: cfg.storages[0], replicas: 1, n: cfg.allocN}
		for _, sc := range []string{scBaselineHop, scSluiceHopExpr, scSluiceHopGo} {
			res, err := b.profileAllocs(ctx, sc, sh)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", groupAllocs, err)
			}
			row := allocRow(res)
			fmt.Fprintf(log, "bench: %-16s allocations: %.1f/msg, %.2f/msg in sluice's own code\n", sc, row.PerMsg, row.SluiceOwnPerMsg)
			rep.Allocs = append(rep.Allocs, row)
		}
	}
	if cfg.has(groupScaleout) {
		so := &scaleout{bin: cfg.sluiceBin, n: cfg.n, runs: cfg.runs, processes: cfg.processes, gcPercent: cfg.gcPercent,
			template: fmt.Sprintf(`merge(%s, {"id": seq, "customer": "customer-" + string(seq %% 50000)})`, data.Records[0]), log: log}
		if so.bin == "" {
			if so.bin, err = buildSluice(ctx, dir); err != nil {
				return nil, fmt.Errorf("%s: %w", groupScaleout, err)
			}
		}
		if rep.Scaleout, err = runScaleout(ctx, so); err != nil {
			return nil, fmt.Errorf("%s: %w", groupScaleout, err)
		}
	}
	if cfg.has(groupPeers) {
		if rep.Peers, err = runPeers(ctx, &peers{n: cfg.n, runs: cfg.runs, sluiceBin: cfg.sluiceBin, log: log}); err != nil {
			return nil, fmt.Errorf("%s: %w", groupPeers, err)
		}
	}
	if cfg.has(groupSoak) {
		if rep.Soak, err = b.soak(ctx, cfg.soakRate, cfg.soakDedup, cfg.soakDuration, cfg.soakEvery, log); err != nil {
			return nil, fmt.Errorf("%s: %w", groupSoak, err)
		}
		rep.Soak.MemoryLimitMiB, rep.Soak.MemoryLimitFrom = rep.Machine.MemoryLimitMiB, limitFrom
	}
	rep.Notes = b.notes
	rep.Date = time.Now().UTC().Format(time.RFC3339)
	rep.DurationSeconds = time.Since(began).Round(time.Second).Seconds()
	return rep, nil
}
