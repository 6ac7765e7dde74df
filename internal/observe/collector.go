package observe

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Label keys of the stage metrics.
const (
	labelPipeline = "pipeline"
	labelStage    = "stage"
)

// scrapeTimeout bounds asking the server for the consumers' backlog in
// one scrape; a stage whose answer has not come by then has no backlog
// gauges in that scrape.
const scrapeTimeout = 2 * time.Second

// stageDescs are the descriptions of the counts of a stage that the
// collector reads at scrape time.
type stageDescs struct {
	received, sent, filtered, errors, dead, dropped, held, pending, ackPending *prometheus.Desc
}

func newStageDescs(constLabels prometheus.Labels) stageDescs {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{labelPipeline, labelStage}, constLabels)
	}
	return stageDescs{
		received:   d("sluice_stage_received_total", "Messages the stage received in this process (a source: records read)."),
		sent:       d("sluice_stage_sent_total", "Messages the stage published in this process (a sink: messages written)."),
		filtered:   d("sluice_stage_filtered_total", "Inputs of the stage that produced no output."),
		errors:     d("sluice_stage_errors_total", "Failed attempts of the stage that were retried (nak with backoff, or tried again in place)."),
		dead:       d("sluice_stage_dead_letters_total", "Messages the stage sent to the dead-letter stream."),
		dropped:    d("sluice_stage_dropped_total", "Failed messages acknowledged without output (on_error: drop)."),
		held:       d("sluice_stage_held_seconds_total", "Time the stage was held by a destination that was down."),
		pending:    d("sluice_stage_pending_messages", "Messages on the stage's inputs not yet delivered to a worker, as the server tells at scrape time."),
		ackPending: d("sluice_stage_ack_pending_messages", "Messages delivered to the stage's workers and not yet acknowledged, as the server tells at scrape time."),
	}
}

// collector is a prometheus.Collector that reads the counts of the running
// jobs when scraped.
type collector struct {
	jobs *jobs
	log  *slog.Logger
	d    stageDescs
}

var _ prometheus.Collector = (*collector)(nil)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ds := &c.d
	for _, d := range []*prometheus.Desc{ds.received, ds.sent, ds.filtered, ds.errors, ds.dead, ds.dropped, ds.held, ds.pending, ds.ackPending} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, j := range c.jobs.running() {
		p := j.Pipeline()
		for _, name := range j.Stages() {
			st := j.Stage(name)
			counter := func(d *prometheus.Desc, v float64) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, p, name)
			}
			counter(c.d.received, float64(st.In))
			counter(c.d.sent, float64(st.Out))
			counter(c.d.filtered, float64(st.Filtered))
			counter(c.d.errors, float64(st.Errors))
			counter(c.d.dead, float64(st.DeadLetters))
			counter(c.d.dropped, float64(st.Dropped))
			counter(c.d.held, st.Held.Seconds())

			b, ok, err := j.Backlog(ctx, name)
			if err != nil {
				c.log.Debug("no backlog for the scrape", "pipeline", p, "stage", name, "err", err)
				continue
			}
			if ok {
				ch <- prometheus.MustNewConstMetric(c.d.pending, prometheus.GaugeValue, float64(b.Pending), p, name)
				ch <- prometheus.MustNewConstMetric(c.d.ackPending, prometheus.GaugeValue, float64(b.AckPending), p, name)
			}
		}
	}
}

// newRegistry returns a registry with the stage collector, the embedded
// server's collector and the Go runtime and process collectors.
func newRegistry(c *collector, nc *natsCollector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, nc)
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
