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

func stageDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{labelPipeline, labelStage}, nil)
}

var (
	descReceived   = stageDesc("sluice_stage_received_total", "Messages the stage received in this process (a source: records read).")
	descSent       = stageDesc("sluice_stage_sent_total", "Messages the stage published in this process (a sink: messages written).")
	descFiltered   = stageDesc("sluice_stage_filtered_total", "Inputs of the stage that produced no output.")
	descErrors     = stageDesc("sluice_stage_errors_total", "Failed attempts of the stage that were retried (nak with backoff, or tried again in place).")
	descDead       = stageDesc("sluice_stage_dead_letters_total", "Messages the stage sent to the dead-letter stream.")
	descDropped    = stageDesc("sluice_stage_dropped_total", "Failed messages acknowledged without output (on_error: drop).")
	descHeld       = stageDesc("sluice_stage_held_seconds_total", "Time the stage was held by a destination that was down.")
	descPending    = stageDesc("sluice_stage_pending_messages", "Messages on the stage's inputs not yet delivered to a worker, as the server tells at scrape time.")
	descAckPending = stageDesc("sluice_stage_ack_pending_messages", "Messages delivered to the stage's workers and not yet acknowledged, as the server tells at scrape time.")
)

// collector is a prometheus.Collector that reads the counts of the running
// jobs when scraped.
type collector struct {
	jobs *jobs
	log  *slog.Logger
}

var _ prometheus.Collector = (*collector)(nil)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReceived, descSent, descFiltered, descErrors, descDead, descDropped, descHeld, descPending, descAckPending} {
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
			counter(descReceived, float64(st.In))
			counter(descSent, float64(st.Out))
			counter(descFiltered, float64(st.Filtered))
			counter(descErrors, float64(st.Errors))
			counter(descDead, float64(st.DeadLetters))
			counter(descDropped, float64(st.Dropped))
			counter(descHeld, st.Held.Seconds())

			b, ok, err := j.Backlog(ctx, name)
			if err != nil {
				c.log.Debug("no backlog for the scrape", "pipeline", p, "stage", name, "err", err)
				continue
			}
			if ok {
				ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(b.Pending), p, name)
				ch <- prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(b.AckPending), p, name)
			}
		}
	}
}

// newRegistry returns a registry with the stage collector and the Go
// runtime and process collectors.
func newRegistry(c *collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
