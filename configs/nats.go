package configs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

// Connection defaults of [Settings.NATSOptions].
const (
	// ClientName is the connection name servers show for sluice.
	ClientName = "sluice"
	// ReconnectWait is the pause between reconnect attempts.
	ReconnectWait = 2 * time.Second
)

// NATSOptions returns the nats.go options for connecting to NATSURL: a
// client name, reconnecting forever every [ReconnectWait], and the
// credentials and TLS files of s.NATS. It reads those files now, so that a
// missing or malformed file is reported before connecting; the error names
// the setting. Conflicting auth settings give an error wrapping
// [ErrInvalidSettings].
func (s Settings) NATSOptions() ([]nats.Option, error) {
	a := s.NATS
	if problems := a.check(); len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidSettings, problems[0])
	}
	opts := []nats.Option{
		nats.Name(ClientName),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
	}
	switch {
	case a.CredsFile != "":
		if err := readable(a.CredsFile); err != nil {
			return nil, fmt.Errorf("sluice: nats.creds_file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("sluice: nats.nkey_seed_file %s: %w", a.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	if a.TLSCA != "" {
		pem, err := os.ReadFile(a.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("sluice: nats.tls_ca: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sluice: nats.tls_ca: no PEM certificate in %s", a.TLSCA)
		}
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey); err != nil {
			return nil, fmt.Errorf("sluice: nats.tls_cert and nats.tls_key: %w", err)
		}
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}

// readable reports why the file at path cannot be read, or nil.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}
