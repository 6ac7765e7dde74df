package server

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestEndpoint: a server with an endpoint records it in its store, only
// its owner may read it, clients with its token (and only they) connect
// through it, with or without a listener and its own authentication, and
// Shutdown removes it.
func TestEndpoint(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"no listener", Options{}},
		{"listener with users", Options{Listen: "127.0.0.1:0", User: "u", Password: "p"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.opts.StoreDir, tt.opts.Endpoint = dir, true
			s, err := Start(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Shutdown)
			path := filepath.Join(dir, EndpointFile)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
			}
			e, err := ReadEndpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			if e.PID != os.Getpid() || len(e.Token) < 32 {
				t.Errorf("endpoint %+v: want this process and a long token", e)
			}
			nc, err := nats.Connect(e.URL, nats.Token(e.Token))
			if err != nil {
				t.Fatalf("connect through the endpoint: %v", err)
			}
			defer nc.Close()
			if _, err := nc.Request("$JS.API.INFO", nil, nats.DefaultTimeout); err != nil {
				t.Errorf("JetStream through the endpoint: %v", err)
			}
			if nc, err := nats.Connect(e.URL, nats.Token("wrong")); err == nil {
				nc.Close()
				t.Error("a wrong token was let in")
			}
			if nc, err := nats.Connect(e.URL); err == nil {
				nc.Close()
				t.Error("no token was let in")
			}

			s.Shutdown()
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after Shutdown: %v, want the endpoint file gone", err)
			}
			if _, err := ReadEndpoint(dir); !errors.Is(err, ErrNoEndpoint) {
				t.Errorf("after Shutdown: ReadEndpoint: %v, want ErrNoEndpoint", err)
			}
		})
	}
}

// TestEndpointStale: an endpoint file left by a process that is gone, or
// naming an address where nothing listens, is stale.
func TestEndpointStale(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skip("cannot run true: ", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, tt := range []struct {
		name string
		e    Endpoint
	}{
		{"process gone", Endpoint{URL: "ws://" + closed, Token: "x", PID: gone.Process.Pid}},
		{"nothing listens", Endpoint{URL: "ws://" + closed, Token: "x", PID: os.Getpid()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			b, _ := json.Marshal(tt.e)
			if err := os.WriteFile(filepath.Join(dir, EndpointFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadEndpoint(dir); !errors.Is(err, ErrStaleEndpoint) {
				t.Errorf("ReadEndpoint: %v, want ErrStaleEndpoint", err)
			}
		})
	}
	// A server started on the store replaces a stale file.
	dir := t.TempDir()
	b, _ := json.Marshal(Endpoint{URL: "ws://" + closed, Token: "x", PID: gone.Process.Pid})
	if err := os.WriteFile(filepath.Join(dir, EndpointFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Start(Options{StoreDir: dir, Endpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	if _, err := ReadEndpoint(dir); err != nil {
		t.Errorf("after a server started on the store: %v", err)
	}
}
