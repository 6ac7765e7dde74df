package runner

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerOptions configure the embedded NATS server.
type ServerOptions struct {
	// StoreDir is the JetStream store directory. Required.
	StoreDir string
	// Listen is a host:port for a TCP listener; empty means none, and
	// clients connect in-process only. Port 0 picks a free port.
	Listen string
	// ReadyTimeout bounds the wait for the server to start; 0 means 10s.
	ReadyTimeout time.Duration
}

// Embedded is a nats-server with JetStream running in this process.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a nats-server with JetStream in this process and
// waits until it accepts connections.
func StartEmbedded(opts ServerOptions) (*Embedded, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("sluice: embedded server: store directory is required")
	}
	so := &server.Options{
		ServerName: "sluice",
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		DontListen: opts.Listen == "",
	}
	if opts.Listen != "" {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("sluice: embedded server: listen address %q: %w", opts.Listen, err)
		}
		so.Host = host
		if so.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("sluice: embedded server: listen port %q: %w", port, err)
		}
		if so.Port == 0 {
			so.Port = server.RANDOM_PORT
		}
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("sluice: embedded server: %w", err)
	}
	srv.Start()
	timeout := opts.ReadyTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	if !srv.ReadyForConnections(timeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("sluice: embedded server: not ready after %s (store %s)", timeout, opts.StoreDir)
	}
	return &Embedded{srv: srv}, nil
}

// Connect returns a connection to the server, in-process.
func (e *Embedded) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name("sluice"), nats.InProcessServer(e.srv)}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("sluice: connect to embedded server: %w", err)
	}
	return nc, nil
}

// ClientURL returns the URL of the TCP listener, or "" without one.
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Shutdown stops the server and waits for it to finish.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
