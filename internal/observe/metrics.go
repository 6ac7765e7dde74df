package observe

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
)

// labelWorker is the label of every stage metric of a cluster worker.
const labelWorker = "worker"

// Names of the metrics the runner's Observer feeds.
const (
	metricRetries    = "sluice_stage_retries_total"
	metricProcessing = "sluice_stage_processing_seconds"
	metricBatchSize  = "sluice_stage_batch_size"
	metricSinkWrite  = "sluice_sink_write_seconds"
	metricEndToEnd   = "sluice_end_to_end_latency_seconds"
	metricSourceLag  = "sluice_source_lag_seconds"
)

// Histogram buckets: durations from half a millisecond (a batch, a write)
// or a millisecond (a record's way through the pipeline) up, doubling;
// batch sizes from 1 to the runner's 2000, doubling.
var (
	durationBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms … 16 s
	latencyBuckets  = prometheus.ExponentialBuckets(0.001, 2, 18)  // 1 ms … 131 s
	sizeBuckets     = prometheus.ExponentialBuckets(1, 2, 12)      // 1 … 2048
)

// metrics is the runner.Observer of a process: histograms and counters
// per pipeline and stage, fed once per batch.
type metrics struct {
	retries    *prometheus.CounterVec
	processing *prometheus.HistogramVec
	batchSize  *prometheus.HistogramVec
	sinkWrite  *prometheus.HistogramVec
	endToEnd   *prometheus.HistogramVec
	lag        *prometheus.GaugeVec

	mu     sync.Mutex
	stages map[[2]string]*stageMetrics
}

var _ runner.Observer = (*metrics)(nil)

// newMetrics returns the metrics, registered with reg; constant labels
// (the worker's) go on every one.
func newMetrics(reg prometheus.Registerer, constLabels prometheus.Labels) *metrics {
	labels := []string{labelPipeline, labelStage}
	hist := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: constLabels}, labels)
	}
	m := &metrics{
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricRetries, ConstLabels: constLabels,
			Help: "Inputs of the stage delivered more than once (NumDelivered > 1), plus attempts the stage made again in place."}, labels),
		processing: hist(metricProcessing, "Time the stage took per batch: a transform running on its inputs, a sink writing them (retries in place included), a source publishing them until stored.", durationBuckets),
		batchSize:  hist(metricBatchSize, "Records per batch the stage handled (a source: records read per batch published).", sizeBuckets),
		sinkWrite:  hist(metricSinkWrite, "Time of each call of a sink's Write (one per batch, more when writes are retried).", durationBuckets),
		endToEnd:   hist(metricEndToEnd, "Time from a record's read by the source to its write by this sink, per record written.", latencyBuckets),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricSourceLag, ConstLabels: constLabels,
			Help: "How far behind what it reads a source is, as of its last batch: the age of the record it read while more waited, 0 when caught up. Only sources that know it (jetstream)."}, labels),
		stages: make(map[[2]string]*stageMetrics),
	}
	reg.MustRegister(m.retries, m.processing, m.batchSize, m.sinkWrite, m.endToEnd, m.lag)
	return m
}

// Stage returns the stage's metrics, made once per pipeline and stage.
func (m *metrics) Stage(pipeline, stage string, role stages.Role) runner.StageObserver {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{pipeline, stage}
	if sm := m.stages[key]; sm != nil {
		return sm
	}
	sm := &stageMetrics{
		retries:    m.retries.WithLabelValues(pipeline, stage),
		processing: m.processing.WithLabelValues(pipeline, stage),
		batchSize:  m.batchSize.WithLabelValues(pipeline, stage),
	}
	switch role {
	case stages.RoleSink:
		sm.sinkWrite = m.sinkWrite.WithLabelValues(pipeline, stage)
		sm.endToEnd = m.endToEnd.WithLabelValues(pipeline, stage)
	case stages.RoleSource:
		sm.lag = m.lag.WithLabelValues(pipeline, stage)
	}
	m.stages[key] = sm
	return sm
}

// stageMetrics are the metrics of one stage, their labels bound.
type stageMetrics struct {
	retries    prometheus.Counter
	processing prometheus.Observer
	batchSize  prometheus.Observer
	sinkWrite  prometheus.Observer // nil but for a sink
	endToEnd   prometheus.Observer // nil but for a sink
	lag        prometheus.Gauge    // nil but for a source
}

var _ runner.StageObserver = (*stageMetrics)(nil)

// Batch observes a batch.
func (s *stageMetrics) Batch(f runner.BatchFigures) {
	if f.Records == 0 {
		return // watermark ticks alone
	}
	s.processing.Observe(f.Duration.Seconds())
	s.batchSize.Observe(float64(f.Records))
	if f.Retries > 0 {
		s.retries.Add(float64(f.Retries))
	}
	if s.endToEnd != nil {
		for _, d := range f.Latencies {
			s.endToEnd.Observe(max(d.Seconds(), 0))
		}
	}
}

// Written observes a sink's write.
func (s *stageMetrics) Written(d time.Duration, _ int) {
	if s.sinkWrite != nil {
		s.sinkWrite.Observe(d.Seconds())
	}
}

// Lag sets a source's lag.
func (s *stageMetrics) Lag(d time.Duration) {
	if s.lag != nil {
		s.lag.Set(d.Seconds())
	}
}
