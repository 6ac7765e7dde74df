package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/cli"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/tlstest"
)

// securePipeline generates records through a map into a discard sink;
// record 7 divides by zero and goes to the dead-letter stream.
const securePipeline = `name: secure
stages:
  - {name: gen, source: generate, with: {count: 40, template: '{"n": seq}'}}
  - {name: calc, transform: map, with: {expr: '{"n": n, "q": 100 / (n - 7)}'}}
  - {name: out, sink: discard}
`

// TestSecureExample starts `sluice server --server-config
// examples/secure/server.conf` with TLS from a CA the test makes, and
// checks the roles of that file: a viewer cannot deploy, nor a worker; a
// deployer can, and the deployment names it; a worker runs the pipeline
// with its permissions; a viewer sees the status; the other team's users
// see nothing of it.
func TestSecureExample(t *testing.T) {
	t.Chdir("..")
	dir := t.TempDir()
	certs := tlstest.New(t)
	t.Setenv("SLUICE_TLS_CERT", certs.ServerCert)
	t.Setenv("SLUICE_TLS_KEY", certs.ServerKey)
	passwords := map[string]string{}
	for _, team := range []string{"a", "b"} {
		for _, role := range []string{"deployer", "worker", "viewer"} {
			pw := fmt.Sprintf("%s-%s-pw-%d", role, team, time.Now().UnixNano())
			passwords[role+"-"+team] = pw
			t.Setenv(fmt.Sprintf("TEAM_%s_%s_PASSWORD", strings.ToUpper(team), strings.ToUpper(role)), pw)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t))
	url := "tls://" + addr

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 2)
	var serverLog bytes.Buffer // read once the server has stopped
	go func() {
		done <- cli.MainContext(ctx, []string{"server", "--server-config", "examples/secure/server.conf",
			"--listen", addr, "--store-dir", filepath.Join(dir, "store")}, strings.NewReader(""), io.Discard, &serverLog)
	}()
	workerCtx, stopWorker := context.WithCancel(ctx)
	t.Cleanup(func() {
		stopWorker()
		cancel()
		for range 2 {
			<-done
		}
	})

	// config writes a sluice config file for a user and returns its path.
	config := func(user string) string {
		path := filepath.Join(dir, user+".yaml")
		text := fmt.Sprintf("nats_url: %s\nnats:\n  user: %s\n  password: %s\n  tls_ca: %s\n", url, user, passwords[user], certs.CA)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	sluice := func(user string, args ...string) (code int, stdout, stderr string) {
		var so, se bytes.Buffer
		code = cli.Main(append([]string{"--config", config(user)}, args...), strings.NewReader(""), &so, &se)
		return code, so.String(), se.String()
	}
	connect := func(user string) *nats.Conn {
		nc, err := nats.Connect(url, nats.UserInfo(user, passwords[user]), nats.RootCAs(certs.CA))
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	natstest.WaitFor(t, time.Minute, "the server", func() bool {
		nc, err := nats.Connect(url, nats.UserInfo("viewer-a", passwords["viewer-a"]), nats.RootCAs(certs.CA))
		if err == nil {
			nc.Close()
		}
		return err == nil
	})
	if _, err := nats.Connect("nats://"+addr, nats.UserInfo("viewer-a", passwords["viewer-a"])); err == nil {
		t.Error("connected without TLS")
	}

	p := filepath.Join(dir, "secure.yaml")
	if err := os.WriteFile(p, []byte(securePipeline), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"viewer-a", "worker-a"} {
		code, _, stderr := sluice(user, "deploy", p)
		if code != cli.ExitFailure || !strings.Contains(stderr, "ermission") {
			t.Errorf("deploy as %s: exit %d, stderr %q; want refused for permissions", user, code, stderr)
		}
		if strings.Contains(stderr, passwords[user]) {
			t.Errorf("deploy as %s shows the password: %s", user, stderr)
		}
	}
	if code, stdout, stderr := sluice("deployer-a", "deploy", p); code != cli.ExitOK {
		t.Fatalf("deploy as deployer-a: exit %d\n%s%s", code, stdout, stderr)
	}

	var workerLog bytes.Buffer
	go func() {
		done <- cli.MainContext(workerCtx, []string{"--config", config("worker-a"), "worker", "--id", "wa"}, strings.NewReader(""), io.Discard, &workerLog)
	}()
	natstest.WaitFor(t, 2*time.Minute, "the run to finish, as viewer-a sees it", func() bool {
		code, stdout, _ := sluice("viewer-a", "status", "--json", "secure")
		var st cluster.StatusReport
		return code == cli.ExitOK && json.Unmarshal([]byte(stdout), &st) == nil && len(st.Pipelines) == 1 &&
			st.Pipelines[0].RunState == "finished"
	})
	code, stdout, stderr := sluice("viewer-a", "status", "secure")
	if code != cli.ExitOK || !strings.Contains(stdout, "by deployer-a (account TEAM_A)") {
		t.Errorf("status as viewer-a: exit %d, want the deployer named:\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "calc") || !strings.Contains(stdout, "wa") {
		t.Errorf("status as viewer-a: want stage calc and worker wa:\n%s", stdout)
	}

	// The worker wrote the pipeline's streams, and the dead letter of
	// record 7.
	jsA, _ := jetstream.New(connect("worker-a"))
	reqCtx, reqCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer reqCancel()
	if _, err := jsA.Stream(reqCtx, "SLUICE_SECURE_GEN"); err != nil {
		t.Errorf("worker-a: stream SLUICE_SECURE_GEN: %v", err)
	}
	if dlq, err := jsA.Stream(reqCtx, "SLUICE_SECURE_DLQ"); err != nil || dlq.CachedInfo().State.Msgs != 1 {
		t.Errorf("worker-a: stream SLUICE_SECURE_DLQ: %v, want 1 dead letter", err)
	}

	// Team B sees nothing of team A.
	jsB, _ := jetstream.New(connect("worker-b"))
	for _, stream := range []string{"SLUICE_SECURE_GEN", "SLUICE_SECURE_CALC", "KV_sluice_pipelines"} {
		if _, err := jsB.Stream(reqCtx, stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("worker-b: stream %s: %v, want not found", stream, err)
		}
	}
	code, stdout, stderr = sluice("viewer-b", "status")
	if code != cli.ExitOK || !strings.Contains(stdout, "no pipeline deployed") {
		t.Errorf("status as viewer-b: exit %d, want nothing deployed:\n%s%s", code, stdout, stderr)
	}

	if code, _, stderr := sluice("viewer-a", "undeploy", "secure"); code == cli.ExitOK {
		t.Errorf("undeploy as viewer-a: exit 0, want refused\n%s", stderr)
	}
	if code, stdout, stderr := sluice("deployer-a", "undeploy", "--purge", "secure"); code != cli.ExitOK {
		t.Errorf("undeploy --purge as deployer-a: exit %d\n%s%s", code, stdout, stderr)
	}
	stopWorker()
	if code := <-done; code != cli.ExitOK {
		t.Errorf("worker-a: exit %d\n%s", code, workerLog.String())
	}
	done <- cli.ExitOK // for the cleanup
	if strings.Contains(workerLog.String(), "ermission") {
		t.Errorf("worker-a met a permission error:\n%s", workerLog.String())
	}
}

// TestSecureDocIsCurrent: docs/operations.md shows
// examples/secure/server.conf as it is.
func TestSecureDocIsCurrent(t *testing.T) {
	conf, err := os.ReadFile("secure/server.conf")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, []byte("```\n"+string(conf)+"```\n")) {
		t.Fatal("docs/operations.md does not show examples/secure/server.conf as it is: copy the file into its block")
	}
}
