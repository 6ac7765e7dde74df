package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
)

// SoakReport is the soak group: one pipeline run at a steady rate for a
// long time, its memory sampled as it goes.
type SoakReport struct {
	Rate            float64   `json:"rate_msgs_per_sec"`
	DurationSeconds float64   `json:"duration_seconds"`
	Pipeline        string    `json:"pipeline"`
	MemoryLimitMiB  float64   `json:"memory_limit_mib"` // -1: none
	MemoryLimitFrom string    `json:"memory_limit_from"`
	Samples         []SoakRow `json:"samples"`
	PeakRSSMiB      float64   `json:"peak_rss_mib"` // the kernel's high-water mark; 0 if unknown
	// Growth is the highest RSS of the last third of the run over the
	// highest of the middle third: about 1 when memory has levelled off.
	Growth float64 `json:"rss_growth_last_third"`
	Sent   uint64  `json:"records_sent"` // by the transform, over the run
}

// SoakRow is one sample of the soak run.
type SoakRow struct {
	Seconds     float64 `json:"seconds"`
	RSSMiB      float64 `json:"rss_mib"`       // resident set of the process; 0 if unknown
	HeapLiveMiB float64 `json:"heap_live_mib"` // live heap at the last GC
	GoTotalMiB  float64 `json:"go_total_mib"`  // all memory the Go runtime maps
	Goroutines  int     `json:"goroutines"`
	GCs         uint64  `json:"gcs"`  // collections so far
	Sent        uint64  `json:"sent"` // records the transform published so far
}

// soakPipeline is the soak's job: generate at the rate → map → discard,
// with every setting but dedup_window at its default.
const soakPipeline = `name: %s
settings: {dedup_window: %s}
stages:
  - name: gen
    source: generate
    with: {rate: %g}
  - name: shape
    transform: map
    with: {expr: 'merge($env, {"double": seq * 2, "tag": "soak"})'}
  - name: out
    sink: discard
`

// soak runs soakPipeline at rate with dedupWindow for d in this process, on
// the bench's embedded server, sampling memory every `every`; progress goes
// to log.
func (b *bench) soak(ctx context.Context, rate float64, dedupWindow, d, every time.Duration, log io.Writer) (*SoakReport, error) {
	name := b.name("soak")
	src := fmt.Sprintf(soakPipeline, name, dedupWindow, rate)
	p, err := pipeline.Parse(name+".yaml", []byte(src), pipeline.Options{Registry: b.reg})
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	defer b.cleanup(sluiceStreams(p)...)
	nc, err := b.dataConn()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	rep := &SoakReport{Rate: rate, Pipeline: strings.TrimSpace(strings.Join(strings.Split(src, "\n")[1:], "\n"))}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runtime.GC()
	resetPeakRSS()
	start := time.Now()
	var sum *runner.Summary
	done := goErr(func() error {
		var err error
		sum, err = runner.Run(runCtx, nc, p, runner.Options{Registry: b.reg})
		return err
	})
	shapeStream := schema.StreamName(name, "shape")
	tick := time.NewTicker(every)
	defer tick.Stop()
	for end := start.Add(d); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			stop()
			<-done
			return nil, ctx.Err()
		case err := <-done:
			return nil, fmt.Errorf("soak: the run ended early: %v", err)
		case <-tick.C:
		}
		row := memorySample(time.Since(start))
		if info, err := b.js.Stream(ctx, shapeStream); err == nil {
			row.Sent = info.CachedInfo().State.LastSeq
		}
		rep.Samples = append(rep.Samples, row)
		fmt.Fprintf(log, "bench: soak %5.0fs: RSS %4.0f MiB, live heap %4.0f MiB, Go total %4.0f MiB, %d goroutines, %d GCs, %s sent\n",
			row.Seconds, row.RSSMiB, row.HeapLiveMiB, row.GoTotalMiB, row.Goroutines, row.GCs, thousands(float64(row.Sent)))
	}
	stop()
	if err := <-done; err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	rep.DurationSeconds = time.Since(start).Seconds()
	if kib := peakRSSKiB(); kib > 0 {
		rep.PeakRSSMiB = float64(kib) / 1024
	}
	rep.Growth = soakGrowth(rep.Samples)
	rep.Sent = stageSummary(sum, "shape").Out
	return rep, nil
}

// soakMetrics are the runtime/metrics a sample reads.
var soakMetrics = []string{"/gc/heap/live:bytes", "/memory/classes/total:bytes", "/gc/cycles/total:gc-cycles", "/sched/goroutines:goroutines"}

// memorySample reads this process's memory at elapsed.
func memorySample(elapsed time.Duration) SoakRow {
	s := make([]metrics.Sample, len(soakMetrics))
	for i, name := range soakMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return SoakRow{Seconds: elapsed.Round(time.Second).Seconds(), RSSMiB: float64(currentRSSKiB()) / 1024,
		HeapLiveMiB: float64(u(0)) / (1 << 20), GoTotalMiB: float64(u(1)) / (1 << 20), GCs: u(2), Goroutines: int(u(3))}
}

// soakGrowth is the highest RSS of the last third of rows over the highest
// of the middle third; 0 with fewer than three rows or no RSS.
func soakGrowth(rows []SoakRow) float64 {
	n := len(rows) / 3
	if n == 0 {
		return 0
	}
	rss := func(rs []SoakRow) float64 {
		return slices.MaxFunc(rs, func(a, b SoakRow) int { return cmp.Compare(a.RSSMiB, b.RSSMiB) }).RSSMiB
	}
	mid, last := rss(rows[n:2*n]), rss(rows[len(rows)-n:])
	if mid == 0 {
		return 0
	}
	return last / mid
}

// soakTable renders the soak group.
func (r *Report) soakTable(b *strings.Builder) {
	s := r.Soak
	if s == nil {
		return
	}
	limit := "none"
	if s.MemoryLimitMiB > 0 {
		limit = fmt.Sprintf("%.0f MiB", s.MemoryLimitMiB)
	}
	fmt.Fprintf(b, "\n## Soak\n\nOne pipeline at %s msgs/s for %s in this process (runner and embedded server), "+
		"its settings at their defaults but as shown; memory limit %s (%s), GC percent %d:\n\n", thousands(s.Rate),
		(time.Duration(s.DurationSeconds) * time.Second).String(), limit, s.MemoryLimitFrom, r.Machine.GCPercent)
	for line := range strings.Lines(s.Pipeline) {
		b.WriteString("    " + line)
	}
	b.WriteString("\n\n| seconds | RSS MiB | live heap MiB | Go total MiB | goroutines | GCs | records sent |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, row := range s.Samples {
		fmt.Fprintf(b, "| %.0f | %.0f | %.0f | %.0f | %d | %d | %s |\n", row.Seconds, row.RSSMiB, row.HeapLiveMiB,
			row.GoTotalMiB, row.Goroutines, row.GCs, thousands(float64(row.Sent)))
	}
	fmt.Fprintf(b, "\nPeak RSS %.0f MiB; the last third's highest RSS is %.2f× the middle third's (1 when memory "+
		"has levelled off); %s records sent.\n", s.PeakRSSMiB, s.Growth, thousands(float64(s.Sent)))
}
