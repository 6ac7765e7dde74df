package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Report is the result of one run of the suite; latest.json holds it.
type Report struct {
	Date            string          `json:"date"`
	DurationSeconds float64         `json:"duration_seconds"`
	Machine         Machine         `json:"machine"`
	N               int             `json:"n"`
	Runs            int             `json:"runs"`
	MeanRecordBytes float64         `json:"mean_record_bytes"`
	Baseline        BaselineTuning  `json:"baseline"`
	Throughput      []ThroughputRow `json:"throughput"`
	Latency         []LatencyRow    `json:"latency"`
	Allocs          []AllocRow      `json:"allocs"`
	Scaleout        *ScaleoutReport `json:"scaleout,omitempty"` // only when the group ran
	Soak            *SoakReport     `json:"soak,omitempty"`     // only when the group ran
	Peers           *PeersReport    `json:"peers,omitempty"`    // only when the group ran
	Notes           []string        `json:"notes,omitempty"`
}

// Machine is where the suite ran.
type Machine struct {
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	NATSServer string `json:"nats_server"`
	NATSGo     string `json:"nats_go"`
	Kernel     string `json:"kernel"`
	CPU        string `json:"cpu"`
	GCPercent  int    `json:"gc_percent"` // the garbage collector's target, as GOGC
	// MemoryLimitMiB is the Go runtime's soft memory limit, -1 for none.
	MemoryLimitMiB float64 `json:"memory_limit_mib"`
}

// BaselineTuning is how the hand-written hop pulled.
type BaselineTuning struct {
	Batch int    `json:"batch"`
	Pull  string `json:"pull"`
}

// ThroughputRow is one scenario at one storage and replica count.
type ThroughputRow struct {
	Scenario   string    `json:"scenario"`
	Storage    string    `json:"storage"`
	Replicas   int       `json:"replicas"`
	MsgsPerSec float64   `json:"msgs_per_sec"` // median of the runs
	Min        float64   `json:"min_msgs_per_sec"`
	Max        float64   `json:"max_msgs_per_sec"`
	Runs       []float64 `json:"runs_msgs_per_sec"`
	// Baseline is the scenario this row is compared with, and Ratio its
	// median over the baseline's median; both empty for a baseline.
	Baseline string   `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio_to_baseline,omitempty"`
	// VsOneReplica is the median over the same scenario's median with one
	// replica.
	VsOneReplica *float64 `json:"vs_one_replica,omitempty"`
	AllocsPerMsg float64  `json:"allocs_per_msg"` // process-wide, median of the runs
	PeakRSSMiB   float64  `json:"peak_rss_mib"`   // process-wide, highest of the runs; 0 if unknown
	// OtherCPU is how many CPUs anything but this process kept busy during
	// the run, the highest of the runs: the machine's noise. -1 if unknown.
	OtherCPU float64 `json:"other_cpu"`
}

// ScaleoutReport is the scale-out group: one CPU-bound transform run by
// worker processes on a server of its own or on a cluster.
type ScaleoutReport struct {
	N    int           `json:"n"`
	Runs int           `json:"runs"`
	Expr string        `json:"expr"` // the transform's map expression
	Rows []ScaleoutRow `json:"rows"`
}

// ScaleoutRow is one server set-up with one count of worker processes.
// CPU figures are CPUs kept busy on average over a run, medians of the
// runs.
type ScaleoutRow struct {
	Shape          string    `json:"shape"`
	Servers        int       `json:"servers"`
	StreamReplicas int       `json:"stream_replicas"`
	Processes      int       `json:"processes"`
	MsgsPerSec     float64   `json:"msgs_per_sec"` // median of the runs
	Min            float64   `json:"min_msgs_per_sec"`
	Max            float64   `json:"max_msgs_per_sec"`
	Runs           []float64 `json:"runs_msgs_per_sec"`
	// VsOneProcess is the median over the same shape's median with one
	// process; VsSingle, for the cluster, over the single server's median
	// with as many processes.
	VsOneProcess     *float64 `json:"vs_one_process,omitempty"`
	VsSingle         *float64 `json:"vs_single_server,omitempty"`
	ServerCPU        float64  `json:"server_cpus"`         // all servers; -1 if unknown
	WorkerCPU        float64  `json:"worker_cpus"`         // all worker processes; -1 if unknown
	BusiestWorkerCPU float64  `json:"busiest_worker_cpus"` // the busiest worker process; -1 if unknown
	CPUMicrosPerMsg  float64  `json:"cpu_us_per_msg"`      // servers and workers; -1 if unknown
	// OtherCPU is what anything but the bench and its processes kept
	// busy, the highest of the runs: the machine's noise. -1 if unknown.
	OtherCPU float64 `json:"other_cpu"`
}

// LatencyRow is the end-to-end latency at one offered rate.
type LatencyRow struct {
	Scenario        string  `json:"scenario"`
	Storage         string  `json:"storage"`
	Rate            float64 `json:"rate_msgs_per_sec"`
	DurationSeconds float64 `json:"duration_seconds"`
	Samples         int     `json:"samples"`
	P50Ms           float64 `json:"p50_ms"`
	P99Ms           float64 `json:"p99_ms"`
	P999Ms          float64 `json:"p999_ms"`
	MaxMs           float64 `json:"max_ms"`
}

// AllocRow is where the allocations of one profiled run went.
type AllocRow struct {
	Scenario        string       `json:"scenario"`
	Storage         string       `json:"storage"`
	N               int          `json:"n"`
	PerMsg          float64      `json:"allocs_per_msg"`
	SluiceOwnPerMsg float64      `json:"sluice_own_allocs_per_msg"`
	Groups          []AllocGroup `json:"groups"`
	TopSluiceSites  []AllocGroup `json:"top_sluice_sites,omitempty"`
}

// AllocGroup is the allocations per message of a package group or of a
// function.
type AllocGroup struct {
	Name   string  `json:"name"`
	PerMsg float64 `json:"allocs_per_msg"`
}

// machine describes this machine.
func machine() Machine {
	m := Machine{
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Go:         runtime.Version(),
		NATSServer: server.VERSION,
		NATSGo:     "unknown",
		Kernel:     "unknown",
		CPU:        "unknown",
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats.go" {
				m.NATSGo = d.Version
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// throughputKey identifies a row.
type throughputKey struct {
	scenario string
	storage  string
	replicas int
}

// baselineOf maps each sluice scenario to the baseline it is compared with.
var baselineOf = map[string]string{
	scSluiceHopExpr: scBaselineHop,
	scSluiceHopGo:   scBaselineHop,
	scSluiceChain:   scBaselineChain,
	scSluiceFused:   scBaselineChain,
}

// throughputRows turns the samples of every run into rows, in scenario
// order, then storage, then replicas.
func throughputRows(samples map[throughputKey][]sample, n int, order []string) []ThroughputRow {
	rows := make([]ThroughputRow, 0, len(samples))
	byKey := make(map[throughputKey]*ThroughputRow, len(samples))
	for k, ss := range samples {
		row := ThroughputRow{Scenario: k.scenario, Storage: k.storage, Replicas: k.replicas, OtherCPU: -1}
		var allocs []float64
		for _, s := range ss {
			row.OtherCPU = max(row.OtherCPU, s.otherCPU)
			row.Runs = append(row.Runs, s.rate(n))
			allocs = append(allocs, float64(s.mallocs)/float64(n))
			if s.rssKiB > 0 {
				row.PeakRSSMiB = max(row.PeakRSSMiB, float64(s.rssKiB)/1024)
			}
		}
		row.MsgsPerSec = median(row.Runs)
		row.Min, row.Max = slices.Min(row.Runs), slices.Max(row.Runs)
		row.AllocsPerMsg = median(allocs)
		rows = append(rows, row)
	}
	for i := range rows {
		byKey[throughputKey{rows[i].Scenario, rows[i].Storage, rows[i].Replicas}] = &rows[i]
	}
	for i := range rows {
		r := &rows[i]
		if base, ok := baselineOf[r.Scenario]; ok {
			r.Baseline = base
			if b := byKey[throughputKey{base, r.Storage, r.Replicas}]; b != nil && b.MsgsPerSec > 0 {
				r.Ratio = ptr(r.MsgsPerSec / b.MsgsPerSec)
			}
		}
		if one := byKey[throughputKey{r.Scenario, r.Storage, 1}]; one != nil && one.MsgsPerSec > 0 && r.Replicas != 1 {
			r.VsOneReplica = ptr(r.MsgsPerSec / one.MsgsPerSec)
		}
	}
	slices.SortFunc(rows, func(a, b ThroughputRow) int {
		return cmp.Or(
			cmp.Compare(slices.Index(order, a.Scenario), slices.Index(order, b.Scenario)),
			cmp.Compare(a.Storage, b.Storage),
			cmp.Compare(a.Replicas, b.Replicas))
	})
	return rows
}

func ptr[T any](v T) *T { return &v }

// latencyRow converts a latency result.
func latencyRow(r latencyResult) LatencyRow {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return LatencyRow{
		Scenario: scSluiceLatency, Storage: r.storage, Rate: r.rate, DurationSeconds: r.duration.Seconds(),
		Samples: r.samples, P50Ms: ms(r.p50), P99Ms: ms(r.p99), P999Ms: ms(r.p999), MaxMs: ms(r.max),
	}
}

// topSluiceSites is how many of sluice's own allocation sites a row lists.
const topSluiceSites = 8

// allocRow sums a profiled run by package group.
func allocRow(r allocResult) AllocRow {
	row := AllocRow{Scenario: r.scenario, Storage: r.storage, N: r.n}
	byGroup := make(map[string]int64)
	bySite := make(map[string]int64)
	own := make(map[string]bool)
	for _, g := range allocGroups {
		own[g.name] = g.sluiceOwn
	}
	var total int64
	for site, c := range r.sites {
		byGroup[site.group] += c
		total += c
		if own[site.group] {
			bySite[site.function] += c
		}
	}
	per := func(c int64) float64 { return float64(c) / float64(r.n) }
	for _, g := range allocGroups {
		row.Groups = append(row.Groups, AllocGroup{Name: g.name, PerMsg: per(byGroup[g.name])})
		if g.sluiceOwn {
			row.SluiceOwnPerMsg += per(byGroup[g.name])
		}
	}
	row.PerMsg = per(total)
	for fn, c := range bySite {
		if per(c) < 0.01 {
			continue // once per batch or per run
		}
		row.TopSluiceSites = append(row.TopSluiceSites, AllocGroup{Name: fn, PerMsg: per(c)})
	}
	slices.SortFunc(row.TopSluiceSites, func(a, b AllocGroup) int {
		return cmp.Or(cmp.Compare(b.PerMsg, a.PerMsg), cmp.Compare(a.Name, b.Name))
	})
	row.TopSluiceSites = row.TopSluiceSites[:min(len(row.TopSluiceSites), topSluiceSites)]
	return row
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	if len(r.Throughput) > 0 {
		fmt.Fprintf(&b, "## Throughput\n\n")
		fmt.Fprintf(&b, "%d records of %.0f bytes on average per run, median of %d runs; one embedded nats-server, in-process clients. "+
			"Ratio: the median over the median of the baseline of the same shape (storage, replicas). "+
			"allocs/msg and peak RSS are process-wide (harness, clients and server). "+
			"Others' CPU: the most CPUs that anything outside this process kept busy during one of the runs (the noise).\n\n",
			r.N, r.MeanRecordBytes, r.Runs)
		b.WriteString("| scenario | storage | replicas | msgs/s (median) | min–max | ratio to baseline | allocs/msg | peak RSS MiB | others' CPU |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, t := range r.Throughput {
			ratio := "—"
			if t.Ratio != nil {
				ratio = fmt.Sprintf("%.2f×", *t.Ratio)
			}
			rss := "—"
			if t.PeakRSSMiB > 0 {
				rss = fmt.Sprintf("%.0f", t.PeakRSSMiB)
			}
			others := "—"
			if t.OtherCPU >= 0 {
				others = fmt.Sprintf("%.2f", t.OtherCPU)
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s–%s | %s | %.1f | %s | %s |\n", t.Scenario, t.Storage, t.Replicas,
				thousands(t.MsgsPerSec), thousands(t.Min), thousands(t.Max), ratio, t.AllocsPerMsg, rss, others)
		}
	}
	r.perWorker(&b)
	r.scaleoutTable(&b)
	r.soakTable(&b)
	r.peersTable(&b)
	if len(r.Latency) > 0 {
		b.WriteString("\n## Latency\n\nFrom the source's timestamp (taken when the record is generated, just before publish) " +
			"to the sink's Write; the first second is dropped as warm-up.\n\n")
		b.WriteString("| scenario | storage | offered msgs/s | seconds | samples | p50 ms | p99 ms | p99.9 ms | max ms |\n")
		b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, l := range r.Latency {
			fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %d | %.2f | %.2f | %.2f | %.2f |\n", l.Scenario, l.Storage,
				thousands(l.Rate), l.DurationSeconds, l.Samples, l.P50Ms, l.P99Ms, l.P999Ms, l.MaxMs)
		}
	}
	r.allocTable(&b)
	m := r.Machine
	b.WriteString("\n## Machine\n\n")
	limit := "none"
	if m.MemoryLimitMiB > 0 {
		limit = fmt.Sprintf("%.0f MiB", m.MemoryLimitMiB)
	}
	fmt.Fprintf(&b, "- CPU: %s, %d logical CPUs, GOMAXPROCS %d, GC percent %d, memory limit %s\n", m.CPU, m.NumCPU, m.GOMAXPROCS, m.GCPercent, limit)
	fmt.Fprintf(&b, "- kernel %s, %s, nats-server %s (embedded), nats.go %s\n", m.Kernel, m.Go, m.NATSServer, m.NATSGo)
	fmt.Fprintf(&b, "- N = %d records per throughput run, %d runs, baseline pull %q with batches of %d\n", r.N, r.Runs, r.Baseline.Pull, r.Baseline.Batch)
	fmt.Fprintf(&b, "- %s, the whole suite took %s\n", r.Date, (time.Duration(r.DurationSeconds) * time.Second).String())
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// perWorker renders each scenario's throughput by replica count relative
// to one replica: in all, and per worker.
func (r *Report) perWorker(b *strings.Builder) {
	type key struct{ scenario, storage string }
	var keys []key
	rates := make(map[key]map[int]float64)
	var replicas []int
	for _, t := range r.Throughput {
		k := key{t.Scenario, t.Storage}
		if rates[k] == nil {
			rates[k] = make(map[int]float64)
			keys = append(keys, k)
		}
		rates[k][t.Replicas] = t.MsgsPerSec
		if !slices.Contains(replicas, t.Replicas) {
			replicas = append(replicas, t.Replicas)
		}
	}
	slices.Sort(replicas)
	if len(replicas) < 2 || !slices.Contains(replicas, 1) {
		return
	}
	b.WriteString("\n### Replicas\n\nThroughput with R workers per stage relative to one worker: in all, and per worker " +
		"(msgs/s ÷ R over the one-worker msgs/s).\n\n| scenario | storage |")
	for _, n := range replicas {
		fmt.Fprintf(b, " R=%d |", n)
	}
	b.WriteString("\n| --- | --- |" + strings.Repeat(" ---: |", len(replicas)) + "\n")
	for _, k := range keys {
		one := rates[k][1]
		fmt.Fprintf(b, "| %s | %s |", k.scenario, k.storage)
		for _, n := range replicas {
			v, ok := rates[k][n]
			switch {
			case !ok || one == 0:
				b.WriteString(" — |")
			case n == 1:
				fmt.Fprintf(b, " %s msgs/s |", thousands(v))
			default:
				fmt.Fprintf(b, " %.2f× (%.2f× per worker) |", v/one, v/one/float64(n))
			}
		}
		b.WriteString("\n")
	}
}

// scaleoutTable renders the scale-out group.
func (r *Report) scaleoutTable(b *strings.Builder) {
	so := r.Scaleout
	if so == nil {
		return
	}
	fmt.Fprintf(b, "\n## Scale-out\n\nOne CPU-bound `map` stage run by P `sluice worker` processes, each with one worker "+
		"on the stage (and one on the discard sink; one of them also runs the generate source, by lease): generate %d records "+
		"→ map → discard, file storage, timed from the deploy to the run's finished record; median of %d runs, a fresh "+
		"store and fresh processes each. The single server is a `sluice server` process (the same nats-server the other "+
		"groups embed, but out of process, with every client over loopback TCP) and keeps one copy of each stream; the "+
		"cluster is three of them keeping three. CPUs busy: averages over the run, by process group; CPU µs/msg: servers "+
		"and workers together. The transform:\n\n    %s\n\n", so.N, so.Runs, so.Expr)
	b.WriteString("| shape | processes | msgs/s (median) | min–max | vs 1 process | cluster / single | CPUs busy: servers | workers (busiest) | CPU µs/msg | others' CPU |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	opt := func(v *float64) string {
		if v == nil {
			return "—"
		}
		return fmt.Sprintf("%.2f×", *v)
	}
	num := func(v float64, format string) string {
		if v < 0 {
			return "—"
		}
		return fmt.Sprintf(format, v)
	}
	for _, t := range so.Rows {
		workers := "—"
		if t.WorkerCPU >= 0 {
			workers = fmt.Sprintf("%.2f (%.2f)", t.WorkerCPU, t.BusiestWorkerCPU)
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s–%s | %s | %s | %s | %s | %s | %s |\n", t.Shape, t.Processes,
			thousands(t.MsgsPerSec), thousands(t.Min), thousands(t.Max), opt(t.VsOneProcess), opt(t.VsSingle),
			num(t.ServerCPU, "%.2f"), workers, num(t.CPUMicrosPerMsg, "%.0f"), num(t.OtherCPU, "%.2f"))
	}
}

// allocTable renders the allocation attribution: one column per profiled
// scenario.
func (r *Report) allocTable(b *strings.Builder) {
	if len(r.Allocs) == 0 {
		return
	}
	a0 := r.Allocs[0]
	fmt.Fprintf(b, "\n## Allocations by package\n\nOne run of %d records, %s storage, one replica, with every allocation recorded "+
		"(runtime.MemProfileRate = 1) from the start of the timed part to its end; allocations per message. Each allocation "+
		"goes to the innermost frame of its stack outside the standard library; encoding/json counts as a package of its own "+
		"except when nats.go or nats-server call it. `stages.init.func1` is the expression function merge.\n\n| package |", a0.N, a0.Storage)
	for _, a := range r.Allocs {
		fmt.Fprintf(b, " %s |", a.Scenario)
	}
	b.WriteString("\n| --- |" + strings.Repeat(" ---: |", len(r.Allocs)) + "\n")
	for i, g := range a0.Groups {
		fmt.Fprintf(b, "| %s |", g.Name)
		for _, a := range r.Allocs {
			fmt.Fprintf(b, " %.2f |", a.Groups[i].PerMsg)
		}
		b.WriteString("\n")
	}
	b.WriteString("| **sluice's own code** |")
	for _, a := range r.Allocs {
		fmt.Fprintf(b, " **%.2f** |", a.SluiceOwnPerMsg)
	}
	b.WriteString("\n| all |")
	for _, a := range r.Allocs {
		fmt.Fprintf(b, " %.2f |", a.PerMsg)
	}
	b.WriteString("\n")
	for _, a := range r.Allocs {
		if len(a.TopSluiceSites) == 0 {
			continue
		}
		fmt.Fprintf(b, "\nTop allocation sites in sluice's own code, %s (allocs/msg): ", a.Scenario)
		for i, s := range a.TopSluiceSites {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(b, "`%s` %.2f", strings.TrimPrefix(s.Name, "github.com/sluicehq/sluice/"), s.PerMsg)
		}
		b.WriteString("\n")
	}
}

// thousands formats v rounded, with thin separators: 61,234.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// write saves the report as latest.md and latest.json in dir.
func (r *Report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results directory: %w", err)
	}
	md := "# sluice benchmark\n\n" + r.Markdown()
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(j, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
