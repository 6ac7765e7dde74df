package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure the server.
type Options struct {
	// ConfigFile is a nats-server configuration file: TLS, authorization
	// (users with permissions, NKeys, tokens), accounts, operator JWTs,
	// cluster routes with their TLS and authorization, and everything
	// else nats-server reads. The fields below that are set win over the
	// file; the file wins over their defaults. JetStream is always on.
	// Authentication from User, Password or Token cannot be combined with
	// a file that configures any (an error wrapping [ErrConfig]).
	ConfigFile string
	// Insecure lets the server accept clients or routes from beyond
	// loopback without authentication; otherwise [Start] refuses with
	// [ErrNoAuth].
	Insecure bool

	// StoreDir is the JetStream store directory. Required, unless
	// ConfigFile sets jetstream store_dir.
	StoreDir string
	// StoreDirDefault says that StoreDir is a default, which a
	// ConfigFile's jetstream store_dir replaces.
	StoreDirDefault bool
	// Listen is a host:port for a TCP listener; empty means none, and
	// clients connect in-process only, unless ConfigFile is set: then
	// the file's host and port, 127.0.0.1 and 4222 where it sets none
	// (nats-server itself would listen on every interface). Port 0 picks
	// a free port.
	Listen string
	// ReadyTimeout bounds the wait for the server to start; 0 means 10s.
	ReadyTimeout time.Duration

	// Name is the server's name, unique in a cluster; empty means the
	// ConfigFile's server_name, else "sluice".
	Name string
	// ClusterName names the cluster; ClusterListen is a host:port where
	// the server accepts routes from the other servers of the cluster,
	// and Routes are the URLs (nats-route://host:port) of the others.
	// With ClusterListen empty the server is standalone, unless the
	// ConfigFile has a cluster block; ClusterListen and Routes replace
	// its listen address and routes, ClusterName its name.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// JetStreamDomain sets the server's JetStream domain; empty means
	// none.
	JetStreamDomain string
	// SyncAlways makes the server sync every write to disk before it
	// acknowledges it; else it syncs every SyncInterval (0: nats-server's
	// default, 2 minutes), and a power cut may lose what it acknowledged
	// since the last sync (a killed process loses nothing: the writes are
	// in the operating system's cache).
	SyncAlways   bool
	SyncInterval time.Duration
	// User and Password, or Token, make clients authenticate; empty means
	// no authentication.
	User, Password, Token string
	// Fresh removes what the store holds (its JetStreamDir) once the store
	// is locked, before the server starts: never from under another
	// process.
	Fresh bool
	// Endpoint opens a private endpoint besides any listener: a
	// WebSocket listener on loopback at a random port, whose clients
	// authenticate with a random token, recorded in the store's
	// [EndpointFile] (mode 0600) until Shutdown. Other commands of this
	// host reach the server through it ([ReadEndpoint]).
	Endpoint bool
}

// Server is a nats-server with JetStream running in this process.
type Server struct {
	srv  *natsd.Server
	lock *os.File // holds the store's lock until Shutdown
	open []string // what it accepts from beyond loopback without authentication
	// endpoint is the path of the endpoint file, "" without one.
	endpoint string
}

// Start starts a nats-server with JetStream in this process and
// waits until it accepts connections. It locks the store directory for as
// long as the server runs: a second Start on it, in this process or
// another, fails with [ErrStoreInUse], naming the process that holds it.
func Start(opts Options) (_ *Server, err error) {
	so, err := natsOptions(opts)
	if err != nil {
		return nil, err
	}
	var token string
	if opts.Endpoint {
		if token, err = addEndpoint(so); err != nil {
			return nil, err
		}
	}
	lock, err := lockStore(so.StoreDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	if opts.Fresh {
		if err := os.RemoveAll(filepath.Join(so.StoreDir, JetStreamDir)); err != nil {
			return nil, fmt.Errorf("sluice: embedded server: remove the store: %w", err)
		}
	}
	srv, err := natsd.NewServer(so)
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
		return nil, fmt.Errorf("sluice: embedded server: not ready after %s (store %s)", timeout, so.StoreDir)
	}
	e := &Server{srv: srv, lock: lock, open: unauthenticated(so)}
	if opts.Endpoint {
		if e.endpoint, err = writeEndpoint(so, so.StoreDir, token); err != nil {
			srv.Shutdown()
			return nil, err
		}
	}
	return e, nil
}

// hostPort splits a host:port address; port 0 picks a free port.
func hostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, p)
	}
	if port == 0 {
		port = natsd.RANDOM_PORT
	}
	return host, port, nil
}

// Connect returns a connection to the server, in-process.
func (e *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name("sluice"), nats.InProcessServer(e.srv)}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("sluice: connect to embedded server: %w", err)
	}
	return nc, nil
}

// Unauthenticated says what the server accepts from beyond loopback
// without authentication, as [Options.Insecure] allowed: clients, routes,
// or nothing.
func (e *Server) Unauthenticated() []string { return e.open }

// ClusterAddr returns the address where the server accepts routes, or ""
// for a standalone server.
func (e *Server) ClusterAddr() string {
	if a := e.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// JetStreamReady waits until JetStream can serve requests: at once for a
// standalone server, once the cluster has elected its meta leader for a
// clustered one (a majority of its nodes must be up). It returns
// ctx.Err() if ctx ends first.
func (e *Server) JetStreamReady(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !e.srv.JetStreamIsCurrent() && e.srv.JetStreamIsClustered() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Name returns the server's name.
func (e *Server) Name() string { return e.srv.Name() }

// StoreDir returns the JetStream store directory.
func (e *Server) StoreDir() string {
	if c := e.srv.JetStreamConfig(); c != nil {
		return filepath.Dir(c.StoreDir)
	}
	return ""
}

// ClientURL returns the URL of the TCP listener, or "" without one.
func (e *Server) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Shutdown stops the server and waits for it to finish.
func (e *Server) Shutdown() {
	if e.endpoint != "" {
		os.Remove(e.endpoint) // gone already is as good
		e.endpoint = ""
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	if e.lock != nil {
		e.lock.Close()
		e.lock = nil
	}
}

// Stats are the JetStream figures of a server, as its monitoring (Jsz)
// reports them.
type Stats struct {
	MemoryBytes    uint64 // memory used by memory-stored streams
	StorageBytes   uint64 // disk used by file-stored streams
	ReservedMemory uint64 // memory reserved by the streams' limits
	ReservedStore  uint64 // disk reserved by the streams' limits
	Streams        int
	Consumers      int
	Messages       uint64 // messages stored in every stream
	Bytes          uint64 // bytes stored in every stream
	APIRequests    uint64 // JetStream API requests served since the start
	APIErrors      uint64 // of them, answered with an error
}

// Stats returns the server's JetStream figures: a walk over its
// accounts' usage, cheap enough for every scrape.
func (e *Server) Stats() (Stats, error) {
	info, err := e.srv.Jsz(&natsd.JSzOptions{})
	if err != nil {
		return Stats{}, fmt.Errorf("server: jetstream stats: %w", err)
	}
	return Stats{
		MemoryBytes:    info.Memory,
		StorageBytes:   info.Store,
		ReservedMemory: info.ReservedMemory,
		ReservedStore:  info.ReservedStore,
		Streams:        info.Streams,
		Consumers:      info.Consumers,
		Messages:       info.Messages,
		Bytes:          info.Bytes,
		APIRequests:    info.API.Total,
		APIErrors:      info.API.Errors,
	}, nil
}

// Ready reports whether the server accepts clients and its JetStream can
// serve requests (for a clustered one: the cluster has a meta leader and
// this node is current). It does not wait; see [Server.JetStreamReady].
func (e *Server) Ready() bool {
	if !e.srv.Running() || !e.srv.JetStreamEnabled() {
		return false
	}
	return !e.srv.JetStreamIsClustered() || e.srv.JetStreamIsCurrent()
}
