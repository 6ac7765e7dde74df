package main

// The peers group: the YAML ETL job as users compare it, run as whole
// processes by sluice, by a minimal Benthos and by a plain Go program (the
// floor), on the same generated file. See docs/performance.md.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/pipeline"
)

// Names of the peers group's systems in the report.
const (
	peerBenthos = "Benthos v4.60.0 (pure + io)"
	peerFloor   = "floor (plain Go, no broker)"
)

// errPeersModules is returned when the peers module's dependencies cannot
// be downloaded (no network to the module proxy and an empty module
// cache); the test skips on it.
var errPeersModules = errors.New("download the peers module's dependencies")

// errPeersMismatch is returned when the systems' outputs differ.
var errPeersMismatch = errors.New("outputs differ")

// sluiceVariant is one way of running the job with sluice: a row of the
// table. Settings are lines added under the pipeline's `settings:`, such as
// "storage: memory"; none for the defaults.
type sluiceVariant struct {
	Name     string
	Settings []string
}

// sluiceVariants are the sluice rows of the peers table. Add one to compare
// a pipeline setting (stage fusion, for one) with the defaults.
var sluiceVariants = []sluiceVariant{
	{Name: "sluice run (embedded server, defaults)"},
	{Name: "sluice run, fusion: off", Settings: []string{"fusion: " + pipeline.FusionOff}},
}

// The job: upper-case customer, double amount, keep amount >= 100.
const (
	peersMapExpr    = `merge($env, {"customer": upper(customer), "amount": amount * 2})`
	peersFilterExpr = `amount >= 100`
)

// sluiceJob is the pipeline of a sluice variant, reading in and writing out.
func sluiceJob(v sluiceVariant, in, out string) []byte {
	var b strings.Builder
	b.WriteString("name: peers-etl\n")
	if len(v.Settings) > 0 {
		b.WriteString("settings:\n")
		for _, s := range v.Settings {
			fmt.Fprintf(&b, "  %s\n", s)
		}
	}
	fmt.Fprintf(&b, `stages:
  - name: read
    source: file
    with: {path: %q, format: jsonl}
  - name: change
    transform: map
    with: {expr: %q}
  - name: keep
    transform: filter
    with: {expr: %q}
  - name: write
    sink: file
    with: {path: %q, format: jsonl, mode: overwrite}
`, in, peersMapExpr, peersFilterExpr, out)
	return []byte(b.String())
}

// benthosJob is the Benthos config of the job: a file input (lines), two
// mapping processors, a file output (lines); no HTTP server, warnings only.
func benthosJob(in, out string) []byte {
	return fmt.Appendf(nil, `http:
  enabled: false
logger:
  level: WARN
input:
  file:
    paths: [%q]
    scanner:
      lines: {}
pipeline:
  processors:
    - mapping: |
        root = this
        root.customer = this.customer.uppercase()
        root.amount = this.amount * 2
    - mapping: 'root = if this.amount < 100 { deleted() }'
output:
  file:
    path: %q
    codec: lines
`, in, out)
}

// The peers group's data: the bench's orders with a shorter note (about
// 204 bytes a record) and amounts below 500, so that the filter keeps about
// 90% of the records, as in the job users compared (PERF-ANCHORS.md).
const (
	peersNoteBytes = 45
	peersMaxCents  = 50_000
)

// newPeersDataset generates n orders for the peers group, deterministically.
func newPeersDataset(n int) (*Dataset, error) {
	return newOrders(n, orderShape{stream: 1, noteBytes: peersNoteBytes, maxCents: peersMaxCents})
}

// peers is the peers group's set-up.
type peers struct {
	n         int
	runs      int
	sluiceBin string // built when empty
	peersDir  string // the peers module; found from the sluice module when empty
	binDir    string // where the built programs go
	log       io.Writer
}

// peerSystem is one row: the command line that runs the job once in dir,
// writing out.
type peerSystem struct {
	name     string
	isSluice bool
	args     func(dir, out string) ([]string, error)
}

// peerRun is one run of one system.
type peerRun struct {
	elapsed   time.Duration
	peakRSS   int64 // KiB; 0 if unknown
	cpu       time.Duration
	otherCPU  float64 // CPUs anything else kept busy meanwhile; -1 if unknown
	outRecs   int
	canonical []string // the output's records, canonical and sorted
}

// PeersReport is the peers group: the ETL job as whole processes.
type PeersReport struct {
	N          int        `json:"n"`
	MeanBytes  float64    `json:"mean_record_bytes"`
	Runs       int        `json:"runs"`
	InputBytes int64      `json:"input_bytes"`
	Kept       int        `json:"kept"` // records in every output
	LoadAvg    string     `json:"load_avg"`
	Rows       []PeersRow `json:"rows"`
	// BuildSeconds is how long building sluice and the peers took.
	BuildSeconds float64 `json:"build_seconds"`
}

// PeersRow is one system's runs.
type PeersRow struct {
	System        string    `json:"system"`
	MedianSeconds float64   `json:"median_seconds"`
	Seconds       []float64 `json:"runs_seconds"`
	RecordsPerSec float64   `json:"records_per_sec"` // input records over the median time
	VsBenthos     *float64  `json:"vs_benthos,omitempty"`
	VsFloor       *float64  `json:"vs_floor,omitempty"`
	CPUSeconds    float64   `json:"cpu_seconds"` // user and system, median of the runs
	// OtherCPU is how many CPUs anything but the system's process kept
	// busy during a run, the highest of the runs: the machine's noise. -1
	// if unknown.
	OtherCPU      float64 `json:"other_cpu"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"` // the child process's, highest of the runs; 0 if unknown
	MedianRSSMiB  float64 `json:"median_rss_mib"`
	OutputRecords int     `json:"output_records"`
	IsSluice      bool    `json:"is_sluice"`
}

// peersModuleDir finds bench/peers from the sluice module the go command
// sees from the working directory.
func peersModuleDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the sluice module: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find the sluice module: run the bench inside it")
	}
	dir := filepath.Join(filepath.Dir(gomod), "bench", "peers")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("find the peers module: %w", err)
	}
	return dir, nil
}

// peerBins are the programs of the peers module.
type peerBins struct {
	benthos, floor string
	maxrss         string // runs a program and reports its peak RSS
}

// buildPeers builds the programs of the peers module into binDir.
func buildPeers(ctx context.Context, peersDir, binDir string) (peerBins, error) {
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = peersDir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), peersDir, err, out.String())
		}
		return nil
	}
	if err := run("mod", "download"); err != nil {
		return peerBins{}, fmt.Errorf("%w: %w", errPeersModules, err)
	}
	if err := run("build", "-o", binDir+string(filepath.Separator), "./benthos", "./floor", "./maxrss"); err != nil {
		return peerBins{}, fmt.Errorf("build the peers: %w", err)
	}
	return peerBins{
		benthos: filepath.Join(binDir, "benthos"),
		floor:   filepath.Join(binDir, "floor"),
		maxrss:  filepath.Join(binDir, "maxrss"),
	}, nil
}

// runPeers generates and writes the data set, builds the programs, runs
// every system p.runs times, alternating, checks that their outputs hold
// the same records and returns the report's section.
func runPeers(ctx context.Context, p *peers) (*PeersReport, error) {
	data, err := newPeersDataset(p.n)
	if err != nil {
		return nil, fmt.Errorf("data set: %w", err)
	}
	dir, err := os.MkdirTemp("", "sluice-peers-")
	if err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	if p.binDir == "" {
		p.binDir = dir
	}
	in := filepath.Join(dir, "orders.jsonl")
	size, err := writeLines(in, data.Records)
	if err != nil {
		return nil, err
	}
	rep := &PeersReport{N: p.n, Runs: p.runs, MeanBytes: data.MeanBytes, InputBytes: size, LoadAvg: loadAvg()}

	built := make(map[string]time.Duration)
	if p.sluiceBin == "" {
		began := time.Now()
		if p.sluiceBin, err = buildSluice(ctx, p.binDir); err != nil {
			return nil, err
		}
		built["sluice"] = time.Since(began)
	}
	if p.peersDir == "" {
		if p.peersDir, err = peersModuleDir(ctx); err != nil {
			return nil, err
		}
	}
	began := time.Now()
	bins, err := buildPeers(ctx, p.peersDir, p.binDir)
	if err != nil {
		return nil, err
	}
	built["peers"] = time.Since(began)
	rep.BuildSeconds = (built["sluice"] + built["peers"]).Seconds()
	fmt.Fprintf(p.log, "bench: peers: %d records, %d bytes; built sluice in %s, Benthos and the floor in %s\n",
		p.n, size, built["sluice"].Round(time.Millisecond), built["peers"].Round(time.Millisecond))

	var systems []peerSystem
	for _, v := range sluiceVariants {
		systems = append(systems, peerSystem{name: v.Name, isSluice: true, args: func(dir, out string) ([]string, error) {
			spec := filepath.Join(dir, "pipeline.yaml")
			if err := os.WriteFile(spec, sluiceJob(v, in, out), 0o644); err != nil {
				return nil, fmt.Errorf("write pipeline: %w", err)
			}
			// A fresh store per run: the process holds its embedded server.
			return []string{p.sluiceBin, "run", "-q", "--store-dir", filepath.Join(dir, "store"), spec}, nil
		}})
	}
	systems = append(systems,
		peerSystem{name: peerBenthos, args: func(dir, out string) ([]string, error) {
			conf := filepath.Join(dir, "benthos.yaml")
			if err := os.WriteFile(conf, benthosJob(in, out), 0o644); err != nil {
				return nil, fmt.Errorf("write Benthos config: %w", err)
			}
			return []string{bins.benthos, "run", conf}, nil
		}},
		peerSystem{name: peerFloor, args: func(_, out string) ([]string, error) {
			return []string{bins.floor, in, out}, nil
		}},
	)

	runs := make([][]peerRun, len(systems))
	var ref []string // the first output's records
	var refName string
	for r := range p.runs {
		// Each run starts with another system, so that none always comes
		// first after a pause.
		for i := range systems {
			k := (r + i) % len(systems)
			s := systems[k]
			pr, err := runPeer(ctx, s, bins.maxrss, filepath.Join(dir, fmt.Sprintf("run-%d-%d", r, k)))
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", s.name, r+1, err)
			}
			fmt.Fprintf(p.log, "bench: peers %-30s run %d/%d: %8s, %9.0f records/s, CPU %6.2f s, peak RSS %4.0f MiB, %d records out, others' CPU %.2f\n",
				s.name, r+1, p.runs, pr.elapsed.Round(time.Millisecond), float64(p.n)/pr.elapsed.Seconds(),
				pr.cpu.Seconds(), float64(pr.peakRSS)/1024, pr.outRecs, pr.otherCPU)
			// Every output is compared with the first one, then let go.
			if ref == nil {
				ref, refName = pr.canonical, s.name
			} else if err := sameRecords(ref, pr.canonical); err != nil {
				return nil, fmt.Errorf("%s, run %d, against %s: %w", s.name, r+1, refName, err)
			}
			pr.canonical = nil
			runs[k] = append(runs[k], pr)
		}
	}
	rep.Kept = runs[0][0].outRecs
	rep.Rows = peersRows(systems, runs, p.n)
	return rep, nil
}

// peersRows summarises each system's runs and the ratios of the sluice rows.
func peersRows(systems []peerSystem, runs [][]peerRun, n int) []PeersRow {
	rows := make([]PeersRow, len(systems))
	rate := map[string]float64{}
	for k, s := range systems {
		row := PeersRow{System: s.name, IsSluice: s.isSluice, OutputRecords: runs[k][0].outRecs}
		var rss, cpu []float64
		row.OtherCPU = -1
		for _, pr := range runs[k] {
			cpu = append(cpu, pr.cpu.Seconds())
			if pr.otherCPU >= 0 {
				row.OtherCPU = max(row.OtherCPU, pr.otherCPU)
			}
			row.Seconds = append(row.Seconds, pr.elapsed.Seconds())
			mib := float64(pr.peakRSS) / 1024
			rss = append(rss, mib)
			row.PeakRSSMiB = max(row.PeakRSSMiB, mib)
		}
		row.MedianSeconds = median(row.Seconds)
		row.MedianRSSMiB = median(rss)
		row.CPUSeconds = median(cpu)
		row.RecordsPerSec = float64(n) / row.MedianSeconds
		rate[s.name] = row.RecordsPerSec
		rows[k] = row
	}
	for k := range rows {
		if rows[k].IsSluice {
			rows[k].VsBenthos = ptr(rows[k].RecordsPerSec / rate[peerBenthos])
			rows[k].VsFloor = ptr(rows[k].RecordsPerSec / rate[peerFloor])
		}
	}
	return rows
}

// runPeer runs one system once in a directory of its own, through the
// maxrss program, and reads back its output.
func runPeer(ctx context.Context, s peerSystem, maxrss, dir string) (peerRun, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return peerRun{}, fmt.Errorf("run directory: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out.jsonl")
	job, err := s.args(dir, out)
	if err != nil {
		return peerRun{}, err
	}
	report := filepath.Join(dir, "maxrss.json")
	cmd := exec.CommandContext(ctx, maxrss, append([]string{report}, job...)...)
	cmd.Dir = dir
	cmd.Env = childEnv("GOWORK=off")
	cmd.SysProcAttr = childAttr()
	// maxrss passes SIGTERM on to the job.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	t0 := readCPUTicks()
	if err := cmd.Run(); err != nil {
		return peerRun{}, fmt.Errorf("%w; output:\n%s", err, tail(logs.String(), 2000))
	}
	t1 := readCPUTicks()
	var rep struct {
		MaxRSSKiB int64 `json:"max_rss_kib"`
		ElapsedNs int64 `json:"elapsed_ns"`
		CPUNs     int64 `json:"cpu_ns"`
	}
	b, err := os.ReadFile(report)
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	if err != nil {
		return peerRun{}, fmt.Errorf("read maxrss report: %w", err)
	}
	canon, err := canonicalLines(out)
	if err != nil {
		return peerRun{}, err
	}
	elapsed, cpu := time.Duration(rep.ElapsedNs), time.Duration(rep.CPUNs)
	others := t1.othersSince(t0, elapsed) // the job's CPU is among them
	if others >= 0 {
		others = max(others-cpu.Seconds()/elapsed.Seconds(), 0)
	}
	return peerRun{elapsed: elapsed, cpu: cpu, otherCPU: others, peakRSS: rep.MaxRSSKiB,
		outRecs: len(canon), canonical: canon}, nil
}

// writeLines writes records as JSON lines to path and returns its size.
func writeLines(path string, records [][]byte) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("write data: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var size int64
	for _, r := range records {
		w.Write(r)
		w.WriteByte('\n')
		size += int64(len(r)) + 1
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return 0, fmt.Errorf("write data: %w", err)
	}
	return size, nil
}

// canonicalLines reads a JSON-lines file and returns each record
// re-encoded canonically (keys sorted, numbers as float64), sorted: two
// outputs hold the same records when these are equal.
func canonicalLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read output: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var out []string
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var v any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("output line %d: %w", line, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("output line %d: %w", line, err)
		}
		out = append(out, string(b))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read output: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// sameRecords compares two sorted lists of canonical records and says how
// they differ.
func sameRecords(want, got []string) error {
	if slices.Equal(want, got) {
		return nil
	}
	var missing, extra []string
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || (i < len(want) && want[i] < got[j]):
			missing = append(missing, want[i])
			i++
		case i == len(want) || got[j] < want[i]:
			extra = append(extra, got[j])
			j++
		default:
			i++
			j++
		}
	}
	first := func(xs []string) string {
		if len(xs) == 0 {
			return "none"
		}
		return xs[0]
	}
	return fmt.Errorf("%w: %d records against %d; %d missing (first: %s), %d extra (first: %s)",
		errPeersMismatch, len(got), len(want), len(missing), first(missing), len(extra), first(extra))
}

// loadAvg is the machine's load average, from /proc/loadavg; "" elsewhere.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// peersTable renders the peers group.
func (r *Report) peersTable(b *strings.Builder) {
	p := r.Peers
	if p == nil {
		return
	}
	b.WriteString("\n## Whole jobs: sluice, Benthos and the floor\n\n")
	fmt.Fprintf(b, "The ETL job: %d JSON-lines orders (%.1f MB, %.0f bytes each on average), file → map (upper-case `customer`, double `amount`) → "+
		"filter (`amount >= 100`, keeps %d) → file; each system a process of its own, run %d times alternating, "+
		"median time from start to exit. records/s: input records over the median time. Ratios: sluice's records/s over the peer's. "+
		"CPU: the process's user and system time, median of the runs. "+
		"Peak RSS: the process's (wait4's ru_maxrss, taken by a small launcher, which adds its own ~2.5 MiB at most), highest of the runs. "+
		"Others' CPU: the most CPUs that anything but the process kept busy during one of its runs (the noise). Load average before: %s.\n\n",
		p.N, float64(p.InputBytes)/1e6, p.MeanBytes, p.Kept, p.Runs, p.LoadAvg)
	b.WriteString("| system | median time | records/s | vs Benthos | vs floor | CPU s | peak RSS MiB | others' CPU |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	ratio := func(v *float64) string {
		if v == nil {
			return "—"
		}
		return fmt.Sprintf("%.2f×", *v)
	}
	for _, row := range p.Rows {
		rss := "—"
		if row.PeakRSSMiB > 0 {
			rss = fmt.Sprintf("%.0f", row.PeakRSSMiB)
		}
		others := "—"
		if row.OtherCPU >= 0 {
			others = fmt.Sprintf("%.2f", row.OtherCPU)
		}
		fmt.Fprintf(b, "| %s | %.2f s | %s | %s | %s | %.2f | %s | %s |\n", row.System, row.MedianSeconds,
			thousands(row.RecordsPerSec), ratio(row.VsBenthos), ratio(row.VsFloor), row.CPUSeconds, rss, others)
	}
}
