package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
)

// EndpointFile is the file in a store directory that tells the other
// commands of this host how to reach the server that holds the store (a
// running "sluice run"): see [Options.Endpoint] and [ReadEndpoint].
const EndpointFile = "endpoint.json"

// ErrNoEndpoint is returned by [ReadEndpoint] when the store has no
// endpoint file: no server with an endpoint runs on it.
var ErrNoEndpoint = errors.New("sluice: no endpoint recorded in the store")

// ErrStaleEndpoint is returned by [ReadEndpoint] when the store's
// endpoint file was left by a process that is gone, or names an address
// that cannot be reached. The error says which.
var ErrStaleEndpoint = errors.New("sluice: stale endpoint")

// Endpoint is a private way into a server that runs on a store, for the
// other commands of the same host: a WebSocket listener on loopback whose
// clients authenticate with Token. It is written to the store's
// [EndpointFile], readable by its owner alone.
type Endpoint struct {
	URL   string `json:"url"`   // ws://127.0.0.1:PORT
	Token string `json:"token"` // the token its clients authenticate with
	PID   int    `json:"pid"`   // the process that serves it
}

// endpointDialTimeout bounds the check that an endpoint accepts
// connections.
const endpointDialTimeout = 2 * time.Second

// newEndpointToken returns a random token of 32 hex digits.
func newEndpointToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("sluice: endpoint token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// addEndpoint configures so with the WebSocket listener of an endpoint
// on loopback, at a random port, and returns its token.
func addEndpoint(so *natsd.Options) (string, error) {
	token, err := newEndpointToken()
	if err != nil {
		return "", err
	}
	so.Websocket = natsd.WebsocketOpts{
		Host:  "127.0.0.1",
		Port:  natsd.RANDOM_PORT,
		NoTLS: true, // loopback only
		Token: token,
	}
	return token, nil
}

// writeEndpoint records the endpoint of a server started with so, ready
// for connections, in store dir, readable by its owner alone, and returns
// its path. nats-server sets the port of so's listener once it listens.
func writeEndpoint(so *natsd.Options, dir, token string) (string, error) {
	if so.Websocket.Port <= 0 {
		return "", errors.New("sluice: embedded server: the endpoint's listener did not start")
	}
	u := "ws://" + net.JoinHostPort(so.Websocket.Host, strconv.Itoa(so.Websocket.Port))
	b, err := json.Marshal(Endpoint{URL: u, Token: token, PID: os.Getpid()})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, EndpointFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("sluice: embedded server: endpoint: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // an earlier file kept its mode
		os.Remove(tmp)
		return "", fmt.Errorf("sluice: embedded server: endpoint: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("sluice: embedded server: endpoint: %w", err)
	}
	return path, nil
}

// ReadEndpoint returns the endpoint of the server that runs on store
// directory dir, once it has checked that its process lives and its
// address accepts connections. It returns an error wrapping
// [ErrNoEndpoint] when there is none, or [ErrStaleEndpoint] (with the
// endpoint read) when the file was left by a process that is gone or its
// address refuses connections.
func ReadEndpoint(dir string) (Endpoint, error) {
	var e Endpoint
	b, err := os.ReadFile(filepath.Join(dir, EndpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return e, fmt.Errorf("%w: %s", ErrNoEndpoint, dir)
	}
	if err != nil {
		return e, fmt.Errorf("sluice: endpoint of %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &e); err != nil || e.URL == "" || e.PID <= 0 {
		return e, fmt.Errorf("%w: %s: not an endpoint file", ErrStaleEndpoint, filepath.Join(dir, EndpointFile))
	}
	if !alive(e.PID) {
		return e, fmt.Errorf("%w: process %d, which wrote %s, is gone", ErrStaleEndpoint, e.PID, filepath.Join(dir, EndpointFile))
	}
	u, err := url.Parse(e.URL)
	if err != nil || u.Host == "" {
		return e, fmt.Errorf("%w: %s: bad url", ErrStaleEndpoint, filepath.Join(dir, EndpointFile))
	}
	c, err := net.DialTimeout("tcp", u.Host, endpointDialTimeout)
	if err != nil {
		return e, fmt.Errorf("%w: process %d does not answer at %s: %w", ErrStaleEndpoint, e.PID, u.Host, err)
	}
	c.Close()
	return e, nil
}

// alive reports whether process pid exists (on this host).
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}
