// Package natstest starts real NATS servers with JetStream for tests.
package natstest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server starts a nats-server with JetStream on a random loopback port,
// storing in a temporary directory, and shuts it down when the test ends.
func Server(t testing.TB) *server.Server {
	t.Helper()
	return ServerOn(t, t.TempDir(), server.RANDOM_PORT)
}

// ServerOn starts a nats-server with JetStream on loopback port (or a
// random one for server.RANDOM_PORT), storing in storeDir, and shuts it
// down when the test ends. Starting another on the same port and store
// after a Shutdown restarts the server.
func ServerOn(t testing.TB, storeDir string, port int) *server.Server {
	t.Helper()
	return start(t, &server.Options{Port: port, StoreDir: storeDir})
}

// ServerMaxPayload starts a server as [Server] does, whose max_payload is
// maxPayload bytes.
func ServerMaxPayload(t testing.TB, maxPayload int32) *server.Server {
	t.Helper()
	return start(t, &server.Options{Port: server.RANDOM_PORT, StoreDir: t.TempDir(), MaxPayload: maxPayload})
}

// start starts a nats-server with JetStream on loopback with opts, and
// shuts it down when the test ends.
func start(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.JetStream, opts.NoLog, opts.NoSigs = "127.0.0.1", true, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// OpenStore starts a server without a listener on a JetStream store that
// a run left behind, and returns an in-process connection to it; both are
// closed when the test ends.
func OpenStore(t testing.TB, dir string) *nats.Conn {
	t.Helper()
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("open store %s: %v", dir, err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatalf("open store %s: server not ready", dir)
	}
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		s.Shutdown()
		t.Fatalf("open store %s: %v", dir, err)
	}
	t.Cleanup(func() {
		nc.Close()
		s.Shutdown()
		s.WaitForShutdown()
	})
	return nc
}

// Connect connects to s and closes the connection when the test ends.
func Connect(t testing.TB, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// WaitFor polls cond every few milliseconds until it returns true, and
// fails the test if it does not within timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StreamMessages returns every message stored in a stream, oldest first.
func StreamMessages(t testing.TB, nc *nats.Conn, stream string) []*nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatalf("read stream %s: %v", stream, err)
	}
	var out []*nats.Msg
	for left := int(info.NumPending); left > 0; {
		batch, err := cons.Fetch(min(left, 1000), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatalf("read stream %s: %v", stream, err)
		}
		for m := range batch.Messages() {
			out = append(out, &nats.Msg{Subject: m.Subject(), Data: m.Data(), Header: m.Headers()})
			left--
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("read stream %s: %v", stream, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("read stream %s: %d messages not read in a minute", stream, left)
		}
	}
	return out
}

// Cluster starts a JetStream cluster of n nats-servers in this process on
// loopback ports, each storing in a temporary directory, waits until
// JetStream can place streams on all of them, and shuts them down when
// the test ends.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	// JetStream wants every node's routes configured from the start, so
	// the route ports are chosen before any server starts.
	ports := make([]int, n)
	var routes []string
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i]))
	}
	nodes := make([]*server.Server, n)
	for i := range nodes {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("start nats-server %d: %v", i+1, err)
		}
		s.Start()
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		nodes[i] = s
	}
	for i, s := range nodes {
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatalf("nats-server %d not ready", i+1)
		}
	}
	// Streams with n replicas can be placed once the meta leader has
	// heard from every node.
	WaitFor(t, 30*time.Second, "a JetStream meta leader that knows every node", func() bool {
		for _, s := range nodes {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				return true
			}
		}
		return false
	})
	return nodes
}

// URLs returns the client URLs of servers, comma-separated.
func URLs(servers []*server.Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// CheckExactlyOnce checks that the file holds every record {"n": i,
// "double": 2i} for i < records once, and nothing else.
func CheckExactlyOnce(t *testing.T, path string, records int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make(map[int]int)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct{ N, Double int }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Double != 2*rec.N {
			t.Fatalf("bad line %q", sc.Text())
		}
		seen[rec.N]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	wrong := 0
	for n := range records {
		if seen[n] != 1 {
			if wrong++; wrong <= 5 {
				t.Errorf("record %d written %d times", n, seen[n])
			}
		}
	}
	if len(seen) != records {
		t.Errorf("%d distinct records, want %d", len(seen), records)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a server that must be told its port before it starts.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
