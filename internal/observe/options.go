package observe

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/runner"
)

// tlsMinVersion is the oldest TLS version the endpoint accepts.
const tlsMinVersion = tls.VersionTLS12

// listen listens on opts.Addr, with TLS if opts names a certificate.
func listen(opts Options) (net.Listener, error) {
	var cfg *tls.Config
	switch {
	case opts.TLSCert != "" && opts.TLSKey != "":
		pair, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTLS, err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tlsMinVersion}
	case opts.TLSCert != "" || opts.TLSKey != "":
		return nil, fmt.Errorf("%w: give both the certificate and its key", ErrTLS)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("observe: listen: %w", err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}

// workerLabel returns the constant labels of a worker's metrics: none
// outside a worker.
func workerLabel(worker string) prometheus.Labels {
	if worker == "" {
		return nil
	}
	return prometheus.Labels{labelWorker: worker}
}

// Observer returns the runner.Observer that feeds the server's per-batch
// metrics: give it to runner.Options (or the worker's options).
func (s *Server) Observer() runner.Observer { return s.metrics }

// WatchNATS makes the server export the JetStream figures of ns, the
// process's embedded NATS server, and /readyz wait until its JetStream is
// ready. Call it once the server has started.
func (s *Server) WatchNATS(ns NATSServer) { s.nats.watch(ns) }

// natsNotReady returns a line if the embedded server watched is not ready.
func (s *Server) natsNotReady() string {
	ns := s.nats.server()
	switch {
	case ns == nil && s.waitNATS:
		return "nats server: not started\n"
	case ns != nil && !ns.Ready():
		return "nats server: JetStream not ready\n"
	}
	return ""
}
