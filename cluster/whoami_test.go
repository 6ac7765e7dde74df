package cluster_test

import (
	"path/filepath"
	"testing"
	"time"

	natsd "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// TestDeployedBy: a deployment records the NATS user that deployed it and
// the user's account, as the server knows them, and never a token.
func TestDeployedBy(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	for _, tt := range []struct {
		name          string
		conf          string // nats-server configuration
		client        []nats.Option
		user, account string
	}{
		{name: "no auth", conf: `debug: false`},
		{name: "user", conf: `authorization { users = [{user: alice, password: pw}] }`, client: []nats.Option{nats.UserInfo("alice", "pw")}, user: "alice"},
		{name: "token", conf: `authorization { token: "t0k3n-s3cret" }`, client: []nats.Option{nats.Token("t0k3n-s3cret")}, user: "token"},
		{name: "nkey", conf: `authorization { users = [{nkey: ` + pub + `}] }`, client: []nats.Option{nats.Nkey(pub, kp.Sign)}, user: pub},
		{
			name:   "not allowed to ask",
			conf:   `authorization { users = [{user: carol, password: pw, permissions: {publish: {deny: ["$SYS.REQ.USER.INFO"]}}}] }`,
			client: []nats.Option{nats.UserInfo("carol", "pw"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})},
			user:   "carol",
		},
		{
			name:   "account",
			conf:   `accounts { TEAM { jetstream: enabled, users: [{user: bob, password: pw}] } }`,
			client: []nats.Option{nats.UserInfo("bob", "pw")},
			user:   "bob", account: "TEAM",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			so := &natsd.Options{}
			if err := so.ProcessConfigString(tt.conf); err != nil {
				t.Fatal(err)
			}
			so.Host, so.Port, so.JetStream, so.StoreDir, so.NoLog, so.NoSigs = "127.0.0.1", natsd.RANDOM_PORT, true, t.TempDir(), true, true
			s, err := natsd.NewServer(so)
			if err != nil {
				t.Fatal(err)
			}
			s.Start()
			t.Cleanup(s.Shutdown)
			if !s.ReadyForConnections(10 * time.Second) {
				t.Fatal("not ready")
			}
			nc, err := nats.Connect(s.ClientURL(), tt.client...)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			d := deployGenerated(t, nc, "who", 1, 0, filepath.Join(t.TempDir(), "out.jsonl"))
			if d.DeployedBy != tt.user || d.Account != tt.account {
				t.Errorf("deployed by %q in account %q, want %q in %q", d.DeployedBy, d.Account, tt.user, tt.account)
			}
		})
	}
}
