package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/server"
)

// background runs the sluice command line with args in this process until
// the test ends (or stop is called), and returns its stderr and a stop
// that cancels it and returns its exit code.
func background(t *testing.T, args ...string) (stderr *lockedBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr = newLockedBuffer()
	done := make(chan int, 1)
	go func() { done <- MainContext(ctx, args, strings.NewReader(""), &lockedBuffer{}, stderr) }()
	var code *int
	stop = func() int {
		if code == nil {
			cancel()
			c := <-done
			code = &c
		}
		return *code
	}
	t.Cleanup(func() { stop() })
	return stderr, stop
}

// waitLog waits until stderr holds want, or the command has ended.
func waitLog(t *testing.T, stderr *lockedBuffer, want string) {
	t.Helper()
	natstest.WaitFor(t, time.Minute, want, func() bool { return strings.Contains(stderr.String(), want) })
}

// slowPipeline generates records until it is stopped.
const slowPipeline = `name: slow
stages:
  - {name: gen, source: generate, with: {rate: 20}}
  - {name: out, sink: discard}
`

// TestRunListenCredentials: with credentials in the settings, the
// embedded server of `sluice run --listen` requires them: an outside
// client without them is refused, with them it reads the pipeline's
// streams.
func TestRunListenCredentials(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		good []nats.Option
		bad  map[string][]nats.Option
	}{
		{
			name: "user and password",
			env:  map[string]string{"SLUICE_NATS_USER": "etl", "SLUICE_NATS_PASSWORD": "s3cret pw"},
			good: []nats.Option{nats.UserInfo("etl", "s3cret pw")},
			bad: map[string][]nats.Option{
				"no credentials": nil,
				"wrong password": {nats.UserInfo("etl", "guess")},
			},
		},
		{
			name: "token",
			env:  map[string]string{"SLUICE_NATS_TOKEN": "tok-3n"},
			good: []nats.Option{nats.Token("tok-3n")},
			bad: map[string][]nats.Option{
				"no credentials": nil,
				"wrong token":    {nats.Token("guess")},
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := inEmptyDir(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			p := writeFile(t, dir, "slow.yaml", slowPipeline)
			url := fmt.Sprintf("nats://127.0.0.1:%d", natstest.FreePort(t))
			stderr, stop := background(t, "run", "--listen", strings.TrimPrefix(url, "nats://"), "--store-dir", filepath.Join(dir, "store"), p)
			waitLog(t, stderr, `"msg":"run started"`)

			for name, opts := range tt.bad {
				if nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(0))...); err == nil {
					nc.Close()
					t.Errorf("%s: connected, want refused", name)
				}
			}
			nc, err := nats.Connect(url, tt.good...)
			if err != nil {
				t.Fatalf("with the credentials: %v", err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := js.Stream(ctx, "SLUICE_SLOW_GEN"); err != nil {
				t.Errorf("read the pipeline's stream with the credentials: %v", err)
			}
			if code := stop(); code != ExitOK {
				t.Errorf("run exited %d:\n%s", code, stderr)
			}
			for _, secret := range tt.env {
				if strings.Contains(stderr.String(), secret) && secret != "etl" {
					t.Errorf("the log shows a secret:\n%s", stderr)
				}
			}
		})
	}
}

// TestListenBeyondLoopback: `run --listen` and `server` beyond loopback
// without authentication refuse to start unless --insecure, and then
// warn.
func TestListenBeyondLoopback(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		refused string // what the error says, "" if it starts
		warn    string // what the log warns of, "" for nothing
	}{
		{name: "run", args: []string{"run", "--listen", "0.0.0.0:0"}, refused: "sluice: server: no authentication beyond loopback: clients could connect to 0.0.0.0:0 from the network without authentication; for --listen beyond loopback set nats.user"},
		{name: "run, insecure", args: []string{"run", "--listen", "0.0.0.0:0", "--insecure"}, warn: "--insecure: the embedded NATS server: clients could connect"},
		{name: "run, user", args: []string{"run", "--listen", "0.0.0.0:0"}, env: map[string]string{"SLUICE_NATS_USER": "u", "SLUICE_NATS_PASSWORD": "p"}},
		{name: "run, loopback", args: []string{"run", "--listen", "127.0.0.1:0"}},
		{name: "server", args: []string{"server", "--listen", "0.0.0.0:0"}, refused: "clients could connect to 0.0.0.0:0 from the network without authentication; require authentication (--server-config FILE"},
		{name: "server cluster", args: []string{"server", "--listen", "127.0.0.1:0", "--cluster-listen", "0.0.0.0:0"}, refused: "routes to 0.0.0.0:0"},
		{name: "server, insecure", args: []string{"server", "--listen", "0.0.0.0:0", "--insecure"}, warn: "--insecure: clients could connect to 0.0.0.0:"},
		{name: "server, token", args: []string{"server", "--listen", "0.0.0.0:0"}, env: map[string]string{"SLUICE_NATS_TOKEN": "t"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := inEmptyDir(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append(tt.args, "--store-dir", filepath.Join(dir, "store"))
			if args[0] == "run" {
				out := filepath.Join(dir, "out.jsonl")
				args = append(args, writeFile(t, dir, "p.yaml", strings.Replace(goodPipeline, "OUT_PATH", out, 1)))
			}
			if tt.refused != "" {
				code, _, stderr := sluice(t, args...)
				if code != ExitUsage || !strings.Contains(stderr, tt.refused) || !strings.Contains(stderr, "--insecure") {
					t.Fatalf("exit %d, stderr %q; want %d, naming %q and --insecure", code, stderr, ExitUsage, tt.refused)
				}
				return
			}
			stderr, stop := background(t, args...)
			started := `"msg":"run started"`
			if args[0] == "server" {
				started = "JetStream ready"
			}
			waitLog(t, stderr, started)
			if code := stop(); code != ExitOK {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			if tt.warn != "" && !strings.Contains(stderr.String(), tt.warn) {
				t.Errorf("no warning %q:\n%s", tt.warn, stderr)
			}
			if tt.warn == "" && strings.Contains(stderr.String(), "--insecure") {
				t.Errorf("a warning, want none:\n%s", stderr)
			}
		})
	}
}

// TestServerConfigFile: `sluice server --server-config` reports a file it
// cannot use, naming it, with exit status 2; client TLS settings without
// a file are refused; flags given win over the file.
func TestServerConfigFile(t *testing.T) {
	for _, tt := range []struct {
		name   string
		conf   string // "" for no --server-config
		args   []string
		env    map[string]string
		stderr []string // what the error says; nil: it starts
	}{
		{name: "bad file", conf: "authorization {\n  users = [{user: a, password: b}]\n}\nlisten: [1\n", stderr: []string{"server.conf:"}},
		{name: "auth in both", conf: "authorization { users = [{user: a, password: b}] }\n", env: map[string]string{"SLUICE_NATS_USER": "x", "SLUICE_NATS_PASSWORD": "y"},
			stderr: []string{"server.conf configures client authentication, and so do nats.user"}},
		{name: "client tls without a file", env: map[string]string{"SLUICE_NATS_TLS_CA": "ca.pem"}, stderr: []string{"nats.tls_* are client settings", "--server-config FILE"}},
		{name: "file listens beyond loopback", conf: "listen: 0.0.0.0:-1\n", stderr: []string{"clients could connect to 0.0.0.0:", "--insecure"}},
		{name: "flag wins over the file", conf: "listen: 0.0.0.0:-1\nserver_name: fromfile\n", args: []string{"--listen", "127.0.0.1:0", "--name", "fromflag"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := inEmptyDir(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append([]string{"server", "--store-dir", filepath.Join(dir, "store")}, tt.args...)
			if tt.conf != "" {
				args = append(args, "--server-config", writeFile(t, dir, "server.conf", tt.conf))
			}
			if tt.stderr != nil {
				code, _, stderr := sluice(t, args...)
				if code != ExitUsage {
					t.Errorf("exit %d, want %d: %s", code, ExitUsage, stderr)
				}
				for _, want := range tt.stderr {
					if !strings.Contains(stderr, want) {
						t.Errorf("stderr %q, want %q", stderr, want)
					}
				}
				return
			}
			stderr, stop := background(t, args...)
			waitLog(t, stderr, "JetStream ready")
			if code := stop(); code != ExitOK {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			if !strings.Contains(stderr.String(), `"name":"fromflag","url":"nats://127.0.0.1:`) {
				t.Errorf("want the flags' name and listener:\n%s", stderr)
			}
		})
	}
}

// TestDeployWithoutUserInfo: a deployer whose permissions do not let it
// ask the server who it is still deploys, recorded under its configured
// user name.
func TestDeployWithoutUserInfo(t *testing.T) {
	dir := inEmptyDir(t)
	conf := writeFile(t, dir, "server.conf", `authorization { users = [{user: carol, password: pw, permissions: {publish: {deny: ["$SYS.REQ.USER.INFO"]}}}] }`+"\n")
	s, err := server.Start(server.Options{ConfigFile: conf, Listen: "127.0.0.1:0", StoreDir: filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	t.Setenv("SLUICE_NATS_URL", s.ClientURL())
	t.Setenv("SLUICE_NATS_USER", "carol")
	t.Setenv("SLUICE_NATS_PASSWORD", "pw")
	p := writeFile(t, dir, "p.yaml", strings.Replace(goodPipeline, "OUT_PATH", filepath.Join(dir, "out.jsonl"), 1))
	if code, stdout, stderr := sluice(t, "deploy", p); code != ExitOK {
		t.Fatalf("deploy: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := sluice(t, "status", "demo"); code != ExitOK || !strings.Contains(stdout, " by carol from ") {
		t.Errorf("status: exit %d, want deployed by carol:\n%s%s", code, stdout, stderr)
	}
}
