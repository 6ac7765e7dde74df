package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/sluicehq/sluice/configs"
	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/tlstest"
)

func writeConf(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "server.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// dial connects to url as a sluice client with auth settings a and
// checks that JetStream answers.
func dial(url string, a configs.NATSAuth) error {
	opts, err := configs.Settings{NATSURL: url, NATS: a}.NATSOptions()
	if err != nil {
		return err
	}
	opts = append(opts, nats.MaxReconnects(0), nats.Timeout(5*time.Second))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// TestConfigFileClients: sluice's clients (package configs) connect to a
// server started with a nats-server configuration file, for each way of
// authenticating and with TLS; a client without what the server asks for
// is refused.
func TestConfigFileClients(t *testing.T) {
	dir := t.TempDir()
	certs := tlstest.New(t)
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	seedFile := filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherSeedFile := filepath.Join(dir, "other.nk")
	if err := os.WriteFile(otherSeedFile, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsBlock := `tls { cert_file: "` + certs.ServerCert + `", key_file: "` + certs.ServerKey + `" }`
	for _, tt := range []struct {
		name   string
		conf   string
		scheme string
		good   configs.NATSAuth
		bad    map[string]configs.NATSAuth // refused
	}{
		{
			name:   "user and password",
			conf:   `authorization { users = [{user: alice, password: "wonder land"}] }`,
			scheme: "nats",
			good:   configs.NATSAuth{User: "alice", Password: "wonder land"},
			bad: map[string]configs.NATSAuth{
				"no credentials": {},
				"wrong password": {User: "alice", Password: "wonder"},
			},
		},
		{
			name:   "token",
			conf:   `authorization { token: "t0ken-s3cret" }`,
			scheme: "nats",
			good:   configs.NATSAuth{Token: "t0ken-s3cret"},
			bad: map[string]configs.NATSAuth{
				"no credentials": {},
				"wrong token":    {Token: "guess"},
			},
		},
		{
			name:   "nkey",
			conf:   `authorization { users = [{nkey: ` + pub + `}] }`,
			scheme: "nats",
			good:   configs.NATSAuth{NKeySeedFile: seedFile},
			bad: map[string]configs.NATSAuth{
				"no credentials": {},
				"another nkey":   {NKeySeedFile: otherSeedFile},
			},
		},
		{
			name:   "tls with a user",
			conf:   tlsBlock + "\n" + `authorization { users = [{user: alice, password: pw}] }`,
			scheme: "tls",
			good:   configs.NATSAuth{TLSCA: certs.CA, User: "alice", Password: "pw"},
			bad: map[string]configs.NATSAuth{
				"unknown CA":     {User: "alice", Password: "pw"},
				"no credentials": {TLSCA: certs.CA},
			},
		},
		{
			name:   "mutual tls",
			conf:   `tls { cert_file: "` + certs.ServerCert + `", key_file: "` + certs.ServerKey + `", ca_file: "` + certs.CA + `", verify: true }`,
			scheme: "tls",
			good:   configs.NATSAuth{TLSCA: certs.CA, TLSCert: certs.ClientCert, TLSKey: certs.ClientKey},
			bad: map[string]configs.NATSAuth{
				"no client certificate": {TLSCA: certs.CA},
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := writeConf(t, t.TempDir(), tt.conf+"\n")
			s, err := Start(Options{ConfigFile: conf, StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Shutdown)
			url := strings.Replace(s.ClientURL(), "nats://", tt.scheme+"://", 1)
			if err := dial(url, tt.good); err != nil {
				t.Errorf("good client refused: %v", err)
			}
			for name, a := range tt.bad {
				if err := dial(url, a); err == nil {
					t.Errorf("%s: connected, want refused", name)
				}
			}
		})
	}
}

// TestNoAuthBeyondLoopback: a server that accepts clients or routes from
// beyond loopback without authentication does not start unless Insecure.
func TestNoAuthBeyondLoopback(t *testing.T) {
	certs := tlstest.New(t)
	routeTLS := writeConf(t, t.TempDir(), `cluster {
  name: c
  tls { cert_file: "`+certs.ServerCert+`", key_file: "`+certs.ServerKey+`", ca_file: "`+certs.CA+`" }
}
`)
	routeAuth := writeConf(t, t.TempDir(), "cluster { name: c, authorization { user: route, password: pw } }\n")
	users := writeConf(t, t.TempDir(), "authorization { users = [{user: a, password: b}] }\n")
	mtls := writeConf(t, t.TempDir(), `tls { cert_file: "`+certs.ServerCert+`", key_file: "`+certs.ServerKey+`", ca_file: "`+certs.CA+`", verify: true }`+"\n")
	// A clustered JetStream server wants routes: one to itself will do.
	port := natstest.FreePort(t)
	all := fmt.Sprintf("0.0.0.0:%d", port)
	self := []string{fmt.Sprintf("nats-route://127.0.0.1:%d", port)}
	for _, tt := range []struct {
		name    string
		opts    Options
		refused string // what the error names; "" for a server that starts
	}{
		{"loopback", Options{Listen: "127.0.0.1:0"}, ""},
		{"localhost", Options{Listen: "localhost:0"}, ""},
		{"no listener", Options{}, ""},
		{"every interface", Options{Listen: "0.0.0.0:0"}, "clients could connect to 0.0.0.0:0"},
		{"empty host", Options{Listen: ":0"}, "clients could connect to 0.0.0.0:0"},
		{"every interface, insecure", Options{Listen: "0.0.0.0:0", Insecure: true}, ""},
		{"every interface, user", Options{Listen: "0.0.0.0:0", User: "u", Password: "p"}, ""},
		{"every interface, token", Options{Listen: "0.0.0.0:0", Token: "t"}, ""},
		{"every interface, file users", Options{Listen: "0.0.0.0:0", ConfigFile: users}, ""},
		{"every interface, mutual tls", Options{Listen: "0.0.0.0:0", ConfigFile: mtls}, ""},
		{"cluster on every interface", Options{Listen: "127.0.0.1:0", ClusterListen: all, Routes: self}, "routes to " + all},
		{"cluster, client auth only", Options{Listen: "127.0.0.1:0", ClusterListen: all, Routes: self, User: "u", Password: "p"}, "routes to " + all},
		{"cluster on loopback", Options{Listen: "127.0.0.1:0", ClusterListen: fmt.Sprintf("127.0.0.1:%d", port), Routes: self}, ""},
		{"cluster, insecure", Options{Listen: "127.0.0.1:0", ClusterListen: all, Routes: self, Insecure: true}, ""},
		{"cluster, route tls", Options{Listen: "127.0.0.1:0", ClusterListen: all, Routes: self, ConfigFile: routeTLS}, ""},
		{"cluster, route authorization", Options{Listen: "127.0.0.1:0", ClusterListen: all, Routes: self, ConfigFile: routeAuth}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.StoreDir = t.TempDir()
			s, err := Start(tt.opts)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				s.Shutdown()
				return
			}
			if err == nil {
				s.Shutdown()
				t.Fatal("started, want refused")
			}
			if !errors.Is(err, ErrNoAuth) || !strings.Contains(err.Error(), tt.refused) {
				t.Errorf("error %q, want ErrNoAuth naming %q", err, tt.refused)
			}
		})
	}
}

// TestConfigFileMerge: the fields of Options that are set win over the
// configuration file, the file wins over their defaults, and
// authentication in both is refused.
func TestConfigFileMerge(t *testing.T) {
	fileStore := t.TempDir()
	conf := writeConf(t, t.TempDir(), `server_name: fromfile
listen: 127.0.0.1:-1
jetstream { store_dir: "`+fileStore+`" }
authorization { users = [{user: a, password: b}] }
`)
	for _, tt := range []struct {
		name      string
		opts      Options
		wantName  string
		wantStore string // "" : the Options' StoreDir
		wantErr   string
	}{
		{name: "file", opts: Options{StoreDirDefault: true}, wantName: "fromfile", wantStore: fileStore},
		{name: "flags win", opts: Options{Name: "fromflag"}, wantName: "fromflag"},
		{name: "user and file auth", opts: Options{User: "x", Password: "y"}, wantErr: "configures client authentication"},
		{name: "token and file auth", opts: Options{Token: "x"}, wantErr: "configures client authentication"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.ConfigFile = conf
			tt.opts.StoreDir = t.TempDir()
			s, err := Start(tt.opts)
			if tt.wantErr != "" {
				if err == nil {
					s.Shutdown()
					t.Fatal("started, want an error")
				}
				if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), conf) {
					t.Fatalf("error %q, want ErrConfig naming %s and %q", err, conf, tt.wantErr)
				}
				if strings.Contains(err.Error(), tt.opts.Password+tt.opts.Token) {
					t.Errorf("error %q shows the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown()
			if got := s.srv.Name(); got != tt.wantName {
				t.Errorf("server name %q, want %q", got, tt.wantName)
			}
			want := tt.wantStore
			if want == "" {
				want = tt.opts.StoreDir
			}
			if got := s.srv.JetStreamConfig().StoreDir; filepath.Dir(got) != want && got != want {
				t.Errorf("store %q, want %q", got, want)
			}
			if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
				t.Errorf("client URL %s, want the file's loopback listener", s.ClientURL())
			}
		})
	}

	t.Run("bad file", func(t *testing.T) {
		bad := writeConf(t, t.TempDir(), "authorization {\n  users = [{user: a, pasword: b}]\n}\nnosuchkey: 1\n")
		_, err := Start(Options{ConfigFile: bad, StoreDir: t.TempDir()})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), bad+":") {
			t.Fatalf("error %v, want ErrConfig naming %s and the line", err, bad)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.conf")
		_, err := Start(Options{ConfigFile: missing, StoreDir: t.TempDir()})
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("error %v, want ErrConfig naming %s", err, missing)
		}
	})
}

// TestClusterRouteAuth: three servers whose configuration file makes
// routes authenticate (an authorization block, or TLS) form a JetStream
// cluster on routes from the flags; a server with the wrong route
// password is not let in.
func TestClusterRouteAuth(t *testing.T) {
	certs := tlstest.New(t)
	for _, tt := range []struct {
		name, conf string
		user       string // in the routes' URLs
	}{
		{"authorization", "cluster { authorization { user: route, password: r0ute-pw } }\n", "route:r0ute-pw@"},
		{"tls", `cluster { tls { cert_file: "` + certs.ServerCert + `", key_file: "` + certs.ServerKey + `", ca_file: "` + certs.CA + `" } }` + "\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := writeConf(t, t.TempDir(), tt.conf)
			ports := []int{natstest.FreePort(t), natstest.FreePort(t), natstest.FreePort(t)}
			var routes []string
			for _, p := range ports {
				routes = append(routes, fmt.Sprintf("nats-route://%s127.0.0.1:%d", tt.user, p))
			}
			var nodes []*Server
			for i, p := range ports {
				s, err := Start(Options{
					ConfigFile: conf, StoreDir: t.TempDir(), Name: fmt.Sprintf("n%d", i+1), Listen: "127.0.0.1:0",
					ClusterName: "sec", ClusterListen: fmt.Sprintf("127.0.0.1:%d", p), Routes: routes,
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.Shutdown)
				nodes = append(nodes, s)
			}
			natstest.WaitFor(t, time.Minute, "a JetStream cluster of three", func() bool {
				for _, s := range nodes {
					if s.srv.JetStreamIsLeader() && len(s.srv.JetStreamClusterPeers()) == 3 {
						return true
					}
				}
				return false
			})
			nc, err := nats.Connect(nodes[0].ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Replicas: 3}); err != nil {
				t.Fatalf("a stream with three copies: %v", err)
			}
			if tt.user == "" {
				return
			}
			// A fourth server with the wrong route password: the others
			// refuse its routes, it refuses theirs, so it has none.
			logs := make([]*errorLog, len(nodes))
			for i, s := range nodes {
				logs[i] = &errorLog{}
				s.srv.SetLogger(logs[i], false, false)
			}
			p4 := natstest.FreePort(t)
			bad := strings.ReplaceAll(strings.Join(routes, ","), "r0ute-pw", "guess")
			badConf := writeConf(t, t.TempDir(), strings.ReplaceAll(tt.conf, "r0ute-pw", "guess"))
			s4, err := Start(Options{
				ConfigFile: badConf, StoreDir: t.TempDir(), Name: "n4", Listen: "127.0.0.1:0",
				ClusterName: "sec", ClusterListen: fmt.Sprintf("127.0.0.1:%d", p4), Routes: strings.Split(bad, ","),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s4.Shutdown)
			natstest.WaitFor(t, time.Minute, "the others to refuse n4's routes", func() bool {
				for _, l := range logs {
					if l.has("uthorization") || l.has("uthentication") {
						return true
					}
				}
				return false
			})
			if n := s4.srv.NumRoutes(); n != 0 {
				t.Errorf("n4 has %d routes, want none", n)
			}
		})
	}
}

// errorLog keeps what a server logs as errors and warnings.
type errorLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *errorLog) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
}

func (l *errorLog) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

func (l *errorLog) Noticef(string, ...any)         {}
func (l *errorLog) Debugf(string, ...any)          {}
func (l *errorLog) Tracef(string, ...any)          {}
func (l *errorLog) Warnf(format string, v ...any)  { l.add(format, v...) }
func (l *errorLog) Errorf(format string, v ...any) { l.add(format, v...) }
func (l *errorLog) Fatalf(format string, v ...any) { l.add(format, v...) }
