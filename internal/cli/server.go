package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/server"
)

func (a *app) serverCmd() *cobra.Command {
	var o server.Options
	var listen string
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
set; a server listening beyond loopback without them logs a warning.

  sluice server --name n1 --store-dir /data/n1 --listen 127.0.0.1:4222 \
    --cluster-listen 127.0.0.1:6222 \
    --routes nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6224`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.server(cmd.Context(), o, listen)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:4222", "host:port where clients connect")
	f.StringVar(&o.Name, "name", "", "server name, unique in the cluster (default: the host name)")
	f.StringVar(&o.ClusterName, "cluster-name", "sluice", "cluster name, the same on every node")
	f.StringVar(&o.ClusterListen, "cluster-listen", "", "host:port where the other nodes connect (default: no cluster)")
	f.StringSliceVar(&o.Routes, "routes", nil, "comma-separated nats-route://host:port of the other nodes")
	f.StringVar(&o.JetStreamDomain, "jetstream-domain", "", "JetStream domain (default: none)")
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
	switch auth := s.NATS; {
	case auth.CredsFile != "" || auth.NKeySeedFile != "":
		return errors.New("server: clients can authenticate with nats.user and nats.password or nats.token; credentials files and NKeys need an operator set-up: run nats-server for that")
	case auth.TLSCert != "" || auth.TLSCA != "":
		return errors.New("server: nats.tls_* are client settings; the server does not serve TLS: run nats-server for that")
	}
	o.StoreDir, o.Listen = s.StoreDir, listen
	o.SyncInterval, o.SyncAlways, _ = s.SyncOptions() // validated with the settings
	o.User, o.Password, o.Token = s.NATS.User, s.NATS.Password, s.NATS.Token
	if o.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("server: --name: %w", err)
		}
		o.Name = host
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer a.tuneMemory()()

	emb, err := server.Start(o)
	if err != nil {
		return failure(err)
	}
	defer emb.Shutdown()
	open := o.User == "" && o.Token == ""
	if open && !isLoopback(listen) {
		a.log.Warn("the server accepts clients from the network without authentication", "listen", listen)
	}
	if o.ClusterListen != "" && !isLoopback(o.ClusterListen) {
		a.log.Warn("the cluster port accepts routes from the network without authentication", "cluster_listen", o.ClusterListen)
	}
	a.log.Info("server started", "name", o.Name, "url", emb.ClientURL(), "cluster", emb.ClusterAddr(), "store", o.StoreDir)
	// A cluster's JetStream is ready once a majority of its nodes is up.
	if emb.JetStreamReady(ctx) == nil {
		a.log.Info("JetStream ready", "name", o.Name)
	}
	<-ctx.Done()
	a.log.Info("server stopping", "name", o.Name)
	return nil
}
