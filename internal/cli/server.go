package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configs"
	"github.com/sluicehq/sluice/server"
)

func (a *app) serverCmd() *cobra.Command {
	var o server.Options
	var listen string
	var bindHTTP func()
	cmd := &cobra.Command{
		Use:         "server",
		Annotations: map[string]string{longRunning: "true"},
		Short:       "Run a NATS server with JetStream, alone or as a node of a cluster",
		Long: `Server runs nats-server with JetStream from the library sluice embeds, until
SIGINT or SIGTERM, storing in --store-dir. Three of them with --cluster-listen
and --routes naming each other form a JetStream cluster; sluice run --nats
URL,URL,URL then uses it (set settings.replicas: 3 in a pipeline to keep
three copies of its streams). A plain nats-server cluster works as well.

It listens on loopback unless told otherwise. Clients authenticate with
nats.user and nats.password, or nats.token, from the settings when they are
set. --server-config FILE reads a nats-server configuration file: TLS, users
with permissions, NKeys, accounts, operator JWTs, and TLS and authorization
for the cluster's routes (see docs/operations.md). Flags given explicitly win
over the file; the file wins over the flags' defaults. A file that sets no
host listens on 127.0.0.1.

A server that would accept clients or routes from beyond loopback without
authentication does not start, unless --insecure is given.

  sluice server --name n1 --store-dir /data/n1 --listen 127.0.0.1:4222 \
    --cluster-listen 127.0.0.1:6222 \
    --routes nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6224
  sluice server --server-config /etc/sluice/server.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if o.ConfigFile != "" {
				// The file wins over the flags' defaults.
				if !f.Changed("listen") {
					listen = ""
				}
				if !f.Changed("cluster-name") {
					o.ClusterName = ""
				}
			}
			bindHTTP()
			a.insecure = o.Insecure
			return a.server(cmd.Context(), o, listen)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:4222", "host:port where clients connect")
	f.StringVar(&o.Name, "name", "", "server name, unique in the cluster (default: the file's server_name, else the host name)")
	f.StringVar(&o.ClusterName, "cluster-name", "sluice", "cluster name, the same on every node")
	f.StringVar(&o.ClusterListen, "cluster-listen", "", "host:port where the other nodes connect (default: no cluster)")
	f.StringSliceVar(&o.Routes, "routes", nil, "comma-separated nats-route://host:port of the other nodes")
	f.StringVar(&o.JetStreamDomain, "jetstream-domain", "", "JetStream domain (default: none)")
	f.StringVar(&o.ConfigFile, "server-config", "", "nats-server configuration file: TLS, authorization, accounts, cluster (flags given win over it)")
	f.BoolVar(&o.Insecure, "insecure", false, "start even if clients or routes from beyond loopback need no authentication, and let --http beyond loopback serve without http_token")
	bindHTTP = a.httpFlags(cmd, "/metrics (Prometheus: JetStream figures, Go runtime, process), /healthz and /readyz (JetStream ready)")
	return cmd
}

func (a *app) server(ctx context.Context, o server.Options, listen string) error {
	if err := a.loadSettings(); err != nil {
		return err
	}
	s := a.settings
	if s.NATSURL != "" {
		return errors.New("server: --nats and SLUICE_NATS_URL name a server to connect to; server starts one")
	}
	if o.ConfigFile == "" {
		switch auth := s.NATS; {
		case auth.CredsFile != "" || auth.NKeySeedFile != "":
			return errors.New("server: nats.creds_file and nats.nkey_seed_file are client settings; give the server its NKey users or operator in a nats-server configuration file: --server-config FILE")
		case auth.TLSCert != "" || auth.TLSCA != "":
			return errors.New("server: nats.tls_* are client settings; give the server its certificate in a nats-server configuration file: --server-config FILE")
		}
	}
	o.StoreDir, o.Listen = s.StoreDir, listen
	o.StoreDirDefault = s.StoreDir == configs.DefaultStoreDir
	o.SyncInterval, o.SyncAlways, _ = s.SyncOptions() // validated with the settings
	o.User, o.Password, o.Token = s.NATS.User, s.NATS.Password, s.NATS.Token
	if o.Name == "" && o.ConfigFile == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("server: --name: %w", err)
		}
		o.Name = host
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer a.tuneMemory()()
	obs, err := a.listenHTTP(nil, "", true)
	if err != nil {
		return err
	}
	if obs != nil {
		// Probes get answers while the store is recovered.
		defer a.serveHTTP(ctx, obs)()
	}

	emb, err := server.Start(o)
	if err != nil {
		return startError(err, "--server-config FILE, or nats.user and nats.password, or nats.token")
	}
	defer emb.Shutdown()
	for _, open := range emb.Unauthenticated() {
		a.log.Warn("--insecure: " + open)
	}
	if obs != nil {
		obs.WatchNATS(emb)
	}
	a.log.Info("server started", "name", emb.Name(), "url", emb.ClientURL(), "cluster", emb.ClusterAddr(), "store", emb.StoreDir())
	// A cluster's JetStream is ready once a majority of its nodes is up.
	if emb.JetStreamReady(ctx) == nil {
		a.log.Info("JetStream ready", "name", emb.Name())
	}
	<-ctx.Done()
	a.log.Info("server stopping", "name", emb.Name())
	return nil
}

// startError is the error of a server that did not start: a usage error
// for a configuration it refuses, saying what would authenticate clients
// (auth) or that --insecure accepts none; else a runtime failure.
func startError(err error, auth string) error {
	switch {
	case errors.Is(err, server.ErrNoAuth):
		return fmt.Errorf("%w; require authentication (%s) or, to accept that, give --insecure", err, auth)
	case errors.Is(err, server.ErrConfig):
		return err
	}
	return failure(err)
}
