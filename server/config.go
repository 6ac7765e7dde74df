package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	natsd "github.com/nats-io/nats-server/v2/server"
)

// natsOptions returns the nats-server options of opts: those of its
// ConfigFile, if any, with the fields of opts that are set over them.
func natsOptions(opts Options) (*natsd.Options, error) {
	so := &natsd.Options{}
	if opts.ConfigFile != "" {
		// nats-server's errors name the file, line and column of each
		// problem, but for a syntax error only the line; they quote no
		// secrets.
		fo, err := natsd.ProcessConfigFile(opts.ConfigFile)
		if err != nil {
			if !strings.Contains(err.Error(), opts.ConfigFile) {
				return nil, fmt.Errorf("%w: %s: %w", ErrConfig, opts.ConfigFile, err)
			}
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		so = fo
		if clientAuth(so) && (opts.User != "" || opts.Token != "") {
			return nil, fmt.Errorf("%w: %s configures client authentication, and so do nats.user or nats.token (SLUICE_NATS_USER, SLUICE_NATS_TOKEN): give the server its users in the file alone",
				ErrConfig, opts.ConfigFile)
		}
		if so.ServerName == "" {
			so.ServerName, _ = os.Hostname()
		}
	}
	so.JetStream, so.NoLog, so.NoSigs = true, true, true
	if opts.StoreDir != "" && (!opts.StoreDirDefault || so.StoreDir == "") {
		so.StoreDir = opts.StoreDir
	}
	if so.StoreDir == "" {
		return nil, errors.New("sluice: embedded server: store directory is required")
	}
	if opts.Name != "" {
		so.ServerName = opts.Name
	}
	if so.ServerName == "" {
		so.ServerName = "sluice"
	}
	if opts.JetStreamDomain != "" {
		so.JetStreamDomain = opts.JetStreamDomain
	}
	if opts.SyncAlways {
		so.SyncAlways = true
	}
	if opts.SyncInterval != 0 {
		so.SyncInterval = opts.SyncInterval
	}
	if opts.User != "" {
		so.Username, so.Password = opts.User, opts.Password
	}
	if opts.Token != "" {
		so.Authorization = opts.Token
	}

	switch {
	case opts.Listen != "":
		var err error
		if so.Host, so.Port, err = hostPort(opts.Listen); err != nil {
			return nil, fmt.Errorf("sluice: embedded server: listen address: %w", err)
		}
	case opts.ConfigFile != "":
		if so.Host == "" {
			so.Host = "127.0.0.1"
		}
		if so.Port == 0 {
			so.Port = natsd.DEFAULT_PORT
		}
	default:
		so.DontListen = true
	}

	if opts.ClusterListen != "" {
		host, port, err := hostPort(opts.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("sluice: embedded server: cluster listen address: %w", err)
		}
		so.Cluster.Host, so.Cluster.Port = host, port
	}
	if so.Cluster.Port != 0 {
		if opts.ClusterName != "" {
			so.Cluster.Name = opts.ClusterName
		}
		if so.Cluster.Name == "" {
			so.Cluster.Name = "sluice"
		}
		if len(opts.Routes) > 0 {
			so.Routes = nil
			for _, r := range opts.Routes {
				u, err := url.Parse(r)
				if err != nil || u.Host == "" {
					return nil, fmt.Errorf("sluice: embedded server: route %q: want nats-route://host:port", redactRoute(r))
				}
				so.Routes = append(so.Routes, u)
			}
		}
	} else if len(opts.Routes) > 0 {
		return nil, errors.New("sluice: embedded server: routes need a cluster listen address")
	}

	if open := unauthenticated(so); len(open) > 0 && !opts.Insecure {
		return nil, fmt.Errorf("%w: %s", ErrNoAuth, open[0])
	}
	return so, nil
}

// unauthenticated says what the server of so would accept from beyond
// loopback without authentication: clients, routes, or both.
func unauthenticated(so *natsd.Options) []string {
	var open []string
	if !so.DontListen && !isLoopback(so.Host) && !clientAuth(so) {
		open = append(open, fmt.Sprintf("clients could connect to %s from the network without authentication",
			net.JoinHostPort(hostOrAll(so.Host), portText(so.Port))))
	}
	if so.Cluster.Port != 0 && !isLoopback(so.Cluster.Host) && !routeAuth(so) {
		open = append(open, fmt.Sprintf("other servers could connect routes to %s from the network without authentication (give the cluster an authorization block or TLS)",
			net.JoinHostPort(hostOrAll(so.Cluster.Host), portText(so.Cluster.Port))))
	}
	return open
}

// clientAuth reports whether the server makes clients authenticate: user
// names, tokens, NKeys, operator JWTs, an auth callout, or client
// certificates it verifies.
func clientAuth(so *natsd.Options) bool {
	return so.Username != "" || so.Authorization != "" || len(so.Users) > 0 || len(so.Nkeys) > 0 ||
		len(so.TrustedOperators) > 0 || len(so.TrustedKeys) > 0 || so.AuthCallout != nil ||
		so.CustomClientAuthentication != nil || so.TLSVerify ||
		so.TLSConfig != nil && so.TLSConfig.ClientAuth == tls.RequireAndVerifyClientCert
}

// routeAuth reports whether the server makes other servers authenticate
// their routes: a cluster authorization block, or cluster TLS (which
// nats-server always verifies both ways).
func routeAuth(so *natsd.Options) bool {
	c := so.Cluster
	return c.Username != "" || c.TLSConfig != nil && c.TLSConfig.ClientAuth == tls.RequireAndVerifyClientCert
}

// isLoopback reports whether host is a loopback address or "localhost".
// An empty host means every interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hostOrAll(host string) string {
	if host == "" {
		return "0.0.0.0"
	}
	return host
}

func portText(port int) string {
	if port == natsd.RANDOM_PORT {
		return "0"
	}
	return fmt.Sprint(port)
}

// redactRoute returns route with its password, if any, replaced.
func redactRoute(route string) string {
	u, err := url.Parse(route)
	if err != nil {
		return "(not a URL)"
	}
	return u.Redacted()
}
