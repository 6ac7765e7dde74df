package observe

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/server"
)

// NATSServer is the embedded NATS server of the process, as the metrics
// and /readyz see it; *server.Server satisfies it.
type NATSServer interface {
	// Stats returns the server's JetStream figures.
	Stats() (server.Stats, error)
	// Ready reports whether the server's JetStream serves requests.
	Ready() bool
}

var _ NATSServer = (*server.Server)(nil)

// natsCollector exports the JetStream figures of the process's embedded
// server, if it has one, read when scraped.
type natsCollector struct {
	srv atomic.Pointer[NATSServer]
	d   natsDescs
}

type natsDescs struct {
	memory, storage, reservedMemory, reservedStorage, streams, consumers, messages, bytes, apiRequests, apiErrors, ready *prometheus.Desc
}

func newNATSCollector() *natsCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &natsCollector{d: natsDescs{
		memory:          d("sluice_server_jetstream_memory_bytes", "Memory used by the embedded server's memory-stored streams."),
		storage:         d("sluice_server_jetstream_storage_bytes", "Disk used by the embedded server's file-stored streams."),
		reservedMemory:  d("sluice_server_jetstream_reserved_memory_bytes", "Memory the embedded server's streams reserve by their limits."),
		reservedStorage: d("sluice_server_jetstream_reserved_storage_bytes", "Disk the embedded server's streams reserve by their limits."),
		streams:         d("sluice_server_jetstream_streams", "Streams on the embedded server."),
		consumers:       d("sluice_server_jetstream_consumers", "Consumers on the embedded server."),
		messages:        d("sluice_server_jetstream_messages", "Messages stored in the embedded server's streams."),
		bytes:           d("sluice_server_jetstream_bytes", "Bytes stored in the embedded server's streams."),
		apiRequests:     d("sluice_server_jetstream_api_requests_total", "JetStream API requests the embedded server has served."),
		apiErrors:       d("sluice_server_jetstream_api_errors_total", "JetStream API requests the embedded server answered with an error."),
		ready:           d("sluice_server_jetstream_ready", "1 when the embedded server's JetStream serves requests, else 0."),
	}}
}

var _ prometheus.Collector = (*natsCollector)(nil)

func (c *natsCollector) watch(ns NATSServer) { c.srv.Store(&ns) }

// server returns the server watched, nil if none.
func (c *natsCollector) server() NATSServer {
	if p := c.srv.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *natsCollector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.d
	for _, desc := range []*prometheus.Desc{d.memory, d.storage, d.reservedMemory, d.reservedStorage, d.streams, d.consumers, d.messages, d.bytes, d.apiRequests, d.apiErrors, d.ready} {
		ch <- desc
	}
}

func (c *natsCollector) Collect(ch chan<- prometheus.Metric) {
	ns := c.server()
	if ns == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	ready := 0.0
	if ns.Ready() {
		ready = 1
	}
	gauge(c.d.ready, ready)
	st, err := ns.Stats()
	if err != nil {
		return
	}
	gauge(c.d.memory, float64(st.MemoryBytes))
	gauge(c.d.storage, float64(st.StorageBytes))
	gauge(c.d.reservedMemory, float64(st.ReservedMemory))
	gauge(c.d.reservedStorage, float64(st.ReservedStore))
	gauge(c.d.streams, float64(st.Streams))
	gauge(c.d.consumers, float64(st.Consumers))
	gauge(c.d.messages, float64(st.Messages))
	gauge(c.d.bytes, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(c.d.apiRequests, prometheus.CounterValue, float64(st.APIRequests))
	ch <- prometheus.MustNewConstMetric(c.d.apiErrors, prometheus.CounterValue, float64(st.APIErrors))
}
