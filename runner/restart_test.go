package runner_test

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sluicehq/sluice/internal/natstest"
)

// TestRunSurvivesServerRestart shuts the NATS server down while a run is
// connected and starts it again on the same store: the runner reconnects
// and finishes with every record in the file exactly once.
func TestRunSurvivesServerRestart(t *testing.T) {
	store := t.TempDir()
	s := natstest.ServerOn(t, store, server.RANDOM_PORT)
	port := s.Addr().(*net.TCPAddr).Port
	nc := reconnecting(t, s.ClientURL())

	run := startFaultRun(t, nc, "restart", "ack_wait: 2s", 10000)
	run.waitOutput(t, 40_000)
	s.Shutdown()
	s.WaitForShutdown()
	natstest.WaitFor(t, 10*time.Second, "the runner to notice", func() bool { return !nc.IsConnected() })
	natstest.ServerOn(t, store, port)

	run.finish(t, "the restart")
	if nc.Stats().Reconnects == 0 {
		t.Fatal("the connection never reconnected")
	}
}
