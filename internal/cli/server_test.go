package cli

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
)

// lockedBuffer is a bytes.Buffer safe to write from a subprocess's copier
// while the test reads it.
type lockedBuffer struct {
	lockedWriter
	b bytes.Buffer
}

func newLockedBuffer() *lockedBuffer {
	l := new(lockedBuffer)
	l.w = &l.b
	return l
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serverNode is a `sluice server` subprocess of a test cluster.
type serverNode struct {
	url  string // its client URL
	log  *lockedBuffer
	cmd  *exec.Cmd
	stop func() // shuts it down (SIGTERM) and waits until it has exited
}

// startServerCluster forms a JetStream cluster of n `sluice server`
// processes on loopback ports, storing under dir, and waits until
// JetStream is ready on every node. The nodes stop when the test ends.
func startServerCluster(t *testing.T, bin, dir string, n int) []*serverNode {
	t.Helper()
	var routes []string
	clusterPorts := make([]int, n)
	for i := range clusterPorts {
		clusterPorts[i] = natstest.FreePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", clusterPorts[i]))
	}
	nodes := make([]*serverNode, n)
	for i := range n {
		port := natstest.FreePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "server",
			"--name", fmt.Sprintf("n%d", i+1),
			"--store-dir", filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			"--listen", fmt.Sprintf("127.0.0.1:%d", port),
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", clusterPorts[i]),
			"--routes", strings.Join(routes, ","))
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 30 * time.Second
		node := &serverNode{url: fmt.Sprintf("nats://127.0.0.1:%d", port), log: newLockedBuffer(), cmd: cmd}
		cmd.Stderr = node.log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		node.stop = func() {
			once.Do(func() {
				cancel()
				_ = cmd.Wait()
			})
		}
		t.Cleanup(node.stop)
		nodes[i] = node
	}
	natstest.WaitFor(t, time.Minute, "JetStream ready on every node", func() bool {
		for _, node := range nodes {
			if !strings.Contains(node.log.String(), "JetStream ready") {
				return false
			}
		}
		return true
	})
	return nodes
}

// clientURLs returns the nodes' client URLs, comma-separated.
func clientURLs(nodes []*serverNode) string {
	urls := make([]string, len(nodes))
	for i, node := range nodes {
		urls[i] = node.url
	}
	return strings.Join(urls, ",")
}

// TestServerCluster forms a 3-node JetStream cluster of `sluice server`
// processes on loopback and runs a pipeline with three copies of its
// streams on it.
func TestServerCluster(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	nodes := startServerCluster(t, bin, dir, 3)

	out := filepath.Join(dir, "out.jsonl")
	p := writeFile(t, dir, "p.yaml", `name: onthree
settings: {replicas: 3}
stages:
  - {name: gen, source: generate, with: {count: 5000, template: '{"n": seq}'}}
  - {name: out, sink: file, with: {path: `+out+`}}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, bin, "run", "--nats", clientURLs(nodes), p)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	if err := run.Run(); err != nil {
		t.Fatalf("sluice run on the cluster: %v\n%s", err, stderr.String())
	}
	if got := len(readLines(t, out)); got != 5000 {
		t.Errorf("%d records written, want 5000", got)
	}
	if !strings.Contains(stderr.String(), "pipeline onthree run 1 finished") {
		t.Errorf("no summary:\n%s", stderr.String())
	}
}
