package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
)

// pollEvery is the pace at which the end of a timed run is watched for.
// It is the only sleep of the harness; each poll is one JetStream API
// request, on both sides alike. An allocation-profiled run is not timed
// and runs several times slower; it polls at profilePollEvery so that the
// polls' own allocations stay out of its figures.
const (
	pollEvery        = time.Millisecond
	profilePollEvery = 50 * time.Millisecond
)

// pollInterval returns the polling pace of a run.
func pollInterval(profile bool) time.Duration {
	if profile {
		return profilePollEvery
	}
	return pollEvery
}

// prefillWindow is the async publish window of the pre-fill publisher;
// a publish waits at most prefillStallWait for room in it.
const (
	prefillWindow    = 8192
	prefillStallWait = 30 * time.Second
)

// prefill publishes records on subject, each with Nats-Msg-Id
// idPrefix+index, asynchronously, and returns once JetStream acknowledged
// all of them. Every scenario fills its input this way before its clock
// starts.
func prefill(ctx context.Context, nc *nats.Conn, subject, idPrefix string, records [][]byte) error {
	var failed atomic.Int64
	var firstErr atomic.Value
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(prefillWindow),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}))
	if err != nil {
		return fmt.Errorf("prefill %s: %w", subject, err)
	}
	for i, data := range records {
		m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{stages.HeaderMsgID: []string{idPrefix + strconv.Itoa(i)}}}
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(prefillStallWait)); err != nil {
			return fmt.Errorf("prefill %s: record %d: %w", subject, i, err)
		}
		if i%prefillWindow == 0 && ctx.Err() != nil {
			return fmt.Errorf("prefill %s: %w", subject, ctx.Err())
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("prefill %s: %d publish acks missing: %w", subject, js.PublishAsyncPending(), ctx.Err())
	}
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("prefill %s: %d of %d publishes failed, first: %v", subject, n, len(records), firstErr.Load())
	}
	return nil
}

// waitLastSeq polls stream every so often until its last sequence reaches n and returns
// the time the poll saw it. The stream's own LastTime is not used: for a
// stream without consumers (interest retention skips the message) the
// server takes it from a clock that ticks every 100 ms.
func waitLastSeq(ctx context.Context, js jetstream.JetStream, stream string, n uint64, every time.Duration) (time.Time, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return time.Time{}, fmt.Errorf("watch stream %s: %w", stream, err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last uint64
	for {
		info, err := s.Info(ctx)
		if err != nil {
			return time.Time{}, fmt.Errorf("watch stream %s (last sequence %d of %d): %w", stream, last, n, err)
		}
		if last = info.State.LastSeq; last >= n {
			return time.Now(), nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("watch stream %s: last sequence %d of %d: %w", stream, last, n, ctx.Err())
		}
	}
}

// waitAcked polls consumer every so often until it has acknowledged n messages of its
// stream and returns the time the poll saw it.
func waitAcked(ctx context.Context, js jetstream.JetStream, stream, consumer string, n uint64, every time.Duration) (time.Time, error) {
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return time.Time{}, fmt.Errorf("watch consumer %s on %s: %w", consumer, stream, err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var acked uint64
	for {
		info, err := c.Info(ctx)
		if err != nil {
			return time.Time{}, fmt.Errorf("watch consumer %s on %s (%d of %d acked): %w", consumer, stream, acked, n, err)
		}
		if acked = info.AckFloor.Stream; acked >= n && info.NumAckPending == 0 {
			return time.Now(), nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("watch consumer %s on %s: %d of %d acked: %w", consumer, stream, acked, n, ctx.Err())
		}
	}
}

// consumerState describes where the named consumers stand, for the error
// of a run that did not finish: each as stream/consumer and its counts.
func consumerState(js jetstream.JetStream, consumers ...[2]string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var parts []string
	for _, sc := range consumers {
		c, err := js.Consumer(ctx, sc[0], sc[1])
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s/%s: %v", sc[0], sc[1], err))
			continue
		}
		i := c.CachedInfo()
		parts = append(parts, fmt.Sprintf("%s/%s: delivered %d, ack floor %d, ack pending %d, pending %d, redelivered %d, waiting pulls %d",
			sc[0], sc[1], i.Delivered.Stream, i.AckFloor.Stream, i.NumAckPending, i.NumPending, i.NumRedelivered, i.NumWaiting))
	}
	return strings.Join(parts, "; ")
}

// deleteStreams deletes the named streams; a stream already gone is fine.
func deleteStreams(ctx context.Context, js jetstream.JetStream, names ...string) error {
	var errs []error
	for _, name := range names {
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			errs = append(errs, fmt.Errorf("delete stream %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// sample is what is measured around one timed run.
type sample struct {
	start, end time.Time
	mallocs    uint64              // heap allocations in the process during the run
	rssKiB     int64               // peak RSS of the process; -1 if unknown
	otherCPU   float64             // CPUs kept busy by anything but this process; -1 if unknown
	sites      map[allocSite]int64 // with profiling: allocations by site
}

// rate returns the run's throughput for n records.
func (s sample) rate(n int) float64 { return float64(n) / s.end.Sub(s.start).Seconds() }

// probe measures process-wide resources over the timed part of a run. It
// counts everything in the process: the harness, the clients and the
// embedded nats-server.
type probe struct {
	mallocs0 uint64
	cpu0     cpuTicks
	start    time.Time
	profile  allocSnapshot // nil unless profiling
	rate     int           // runtime.MemProfileRate to restore
}

// startProbe frees what earlier runs left, resets the peak RSS mark
// (Linux) and starts the clock. With profile, every allocation is
// recorded in the memory profile until stop.
func startProbe(profile bool) *probe {
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	p := &probe{}
	if profile {
		p.profile = memProfile()
		p.rate = runtime.MemProfileRate
		runtime.MemProfileRate = 1
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.mallocs0 = ms.Mallocs
	p.cpu0 = readCPUTicks()
	p.start = time.Now()
	return p
}

// stop records end as the end of the run and what was allocated since
// startProbe. Call it once the end was observed.
func (p *probe) stop(end time.Time, n int) sample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := sample{start: p.start, end: end, mallocs: ms.Mallocs - p.mallocs0, rssKiB: -1,
		otherCPU: readCPUTicks().othersSince(p.cpu0, time.Since(p.start))}
	if p.profile != nil {
		runtime.MemProfileRate = p.rate
		s.sites = attribute(p.profile, memProfile())
	}
	return s
}

// cpuTicks is the CPU time, in clock ticks, that the machine spent busy
// (steal included: time the hypervisor gave to others) and that this
// process used.
type cpuTicks struct {
	machine, self uint64
	ok            bool
}

// clockTick is USER_HZ, the unit of /proc/stat, on every Linux platform Go
// supports.
const clockTick = 10 * time.Millisecond

// readCPUTicks reads /proc/stat and /proc/self/stat (Linux).
func readCPUTicks() cpuTicks {
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}
	}
	line, _, _ := strings.Cut(string(st), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTicks{}
	}
	var t cpuTicks
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return cpuTicks{}
		}
		t.machine += v
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return cpuTicks{}
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th.
	_, rest, ok := strings.Cut(string(self), ") ")
	sf := strings.Fields(rest)
	if !ok || len(sf) < 13 {
		return cpuTicks{}
	}
	for _, s := range sf[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTicks{}
		}
		t.self += v
	}
	t.ok = true
	return t
}

// othersSince returns how many CPUs, on average over elapsed, were busy
// with anything but this process since t0; -1 if unknown.
func (t cpuTicks) othersSince(t0 cpuTicks, elapsed time.Duration) float64 {
	if !t.ok || !t0.ok || elapsed <= 0 {
		return -1
	}
	others := int64(t.machine-t0.machine) - int64(t.self-t0.self)
	return max(float64(others)*float64(clockTick)/float64(elapsed), 0)
}

// resetPeakRSS resets the kernel's high-water mark of this process's RSS
// to its current RSS, where /proc/self/clear_refs allows it.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSSKiB returns VmHWM of /proc/self/status in KiB, or -1.
func peakRSSKiB() int64 { return procStatusKiB("VmHWM:") }

// currentRSSKiB returns VmRSS of /proc/self/status in KiB, or -1.
func currentRSSKiB() int64 { return procStatusKiB("VmRSS:") }

// procStatusKiB returns the field of /proc/self/status (Linux) in KiB, or
// -1.
func procStatusKiB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

// median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted
// durations, by the nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps 99.9% of 1000 at rank 999 despite rounding.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Package groups that allocations are attributed to, in report order.
// sluiceOwn marks the groups that count as sluice's own code.
var allocGroups = []struct {
	name      string
	prefixes  []string
	sluiceOwn bool
}{
	{"sluice/runner", []string{"github.com/sluicehq/sluice/runner"}, true},
	{"sluice/stages", []string{"github.com/sluicehq/sluice/stages"}, true},
	{"sluice/other", []string{"github.com/sluicehq/sluice/"}, true},
	{"bench (Go transform, harness)", []string{"main"}, false},
	{"encoding/json", []string{"encoding/json"}, false},
	{"sonic (sluice's JSON codec)", []string{"github.com/bytedance/", "github.com/cloudwego/"}, false},
	{"expr-lang", []string{"github.com/expr-lang/expr"}, false},
	{"nats.go", []string{"github.com/nats-io/nats.go"}, false},
	{"orbit.go (fast batch)", []string{"github.com/synadia-io/orbit.go"}, false},
	{"nats-server", []string{"github.com/nats-io/nats-server"}, false},
	{"other", nil, false},
}

// allocSnapshot is the memory profile's allocation count by call stack.
type allocSnapshot map[[32]uintptr]int64

// memProfile returns the allocations recorded so far. It runs two
// garbage collections first: the profile lags behind by up to two.
func memProfile() allocSnapshot {
	runtime.GC()
	runtime.GC()
	n, _ := runtime.MemProfile(nil, true)
	var recs []runtime.MemProfileRecord
	for {
		recs = make([]runtime.MemProfileRecord, n+256)
		var ok bool
		if n, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:n]
			break
		}
	}
	snap := make(allocSnapshot, len(recs))
	for _, r := range recs {
		snap[r.Stack0] += r.AllocObjects
	}
	return snap
}

// allocSite is where allocations were attributed: a group and the
// function of the frame that decided it.
type allocSite struct {
	group, function string
}

// attribute sums the allocations of after that are not in before by
// site. Each call stack goes to its innermost frame outside the standard
// library: strconv.Itoa called by the runner counts for the runner. The
// exception is encoding/json: called from nats-server or nats.go (their
// API messages) it counts for them, called from any other code (the
// records of the Go transform and of the baseline) it counts as
// encoding/json. Stacks wholly inside the standard library (the
// scheduler, timers) go to "other".
func attribute(before, after allocSnapshot) map[allocSite]int64 {
	out := make(map[allocSite]int64)
	for stk, n := range after {
		n -= before[stk]
		if n <= 0 {
			continue
		}
		out[siteOf(stk)] += n
	}
	return out
}

func siteOf(stk [32]uintptr) allocSite {
	pcs := stk[:]
	if i := slices.Index(pcs, 0); i >= 0 {
		pcs = pcs[:i]
	}
	frames := runtime.CallersFrames(pcs)
	var json *runtime.Frame
	for {
		f, more := frames.Next()
		pkg := funcPackage(f.Function)
		if pkg == "encoding/json" && json == nil {
			json = &f
		}
		if pkg == "main" || strings.Contains(strings.SplitN(pkg, "/", 2)[0], ".") {
			site := allocSite{group: groupOf(pkg), function: f.Function}
			if json != nil && site.group != "nats-server" && site.group != "nats.go" {
				site = allocSite{group: "encoding/json", function: json.Function}
			}
			return site
		}
		if !more {
			return allocSite{group: "other", function: f.Function}
		}
	}
}

// funcPackage returns the import path of a function's package from its
// full name, such as github.com/a/b.(*T).M. In symbol names a dot in the
// last path element is escaped (nats%2ego); it comes back unescaped.
func funcPackage(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		fn = fn[:slash+1+dot]
	}
	return strings.ReplaceAll(fn, "%2e", ".")
}

func groupOf(pkg string) string {
	for _, g := range allocGroups {
		for _, p := range g.prefixes {
			if pkg == p || strings.HasPrefix(pkg, strings.TrimSuffix(p, "/")+"/") {
				return g.name
			}
		}
	}
	return "other"
}
