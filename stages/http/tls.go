package http

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"

	"github.com/sluicehq/sluice/stages"
)

// The TLS parameters of the http source and sink.
const (
	paramTLSCert     = "tls_cert"
	paramTLSKey      = "tls_key"
	paramTLSClientCA = "tls_client_ca" // source: the CA that signs client certificates
	paramTLSCA       = "tls_ca"        // sink: the CA that signs the server's certificate
)

// tlsMinVersion is the oldest TLS version the source and the sink speak.
const tlsMinVersion = tls.VersionTLS12

// checkTLSPair checks, without reading the files, that the parameters
// certParam and keyParam are given both or neither, and not empty. The
// files themselves are read when the stage is built (see [loadKeyPair]),
// on the host that runs it: the host that validates a pipeline (sluice
// deploy) need not hold them.
func checkTLSPair(p stages.Params, certParam, keyParam string) error {
	for _, name := range []string{certParam, keyParam} {
		if p.Has(name) && p.String(name) == "" {
			return stages.ParamErrorf(name, "must not be empty (an unset ${VAR}?); leave it out for no TLS certificate")
		}
	}
	switch {
	case p.Has(certParam) && !p.Has(keyParam):
		return stages.ParamErrorf(keyParam, "is required with %s (the private key of its certificate)", certParam)
	case p.Has(keyParam) && !p.Has(certParam):
		return stages.ParamErrorf(certParam, "is required with %s (the certificate of its key)", keyParam)
	}
	return nil
}

// checkTLSFile checks that the file parameter name, when given, is not
// empty, without reading it.
func checkTLSFile(p stages.Params, name string) error {
	if p.Has(name) && p.String(name) == "" {
		return stages.ParamErrorf(name, "must not be empty (an unset ${VAR}?); leave it out for none")
	}
	return nil
}

// loadKeyPair reads the PEM certificate (chain) of certParam and the
// private key of keyParam. Its errors are [stages.ParamErrorf] on the
// parameter at fault: a file missing or unreadable, no certificate in the
// certificate file, a key that is unreadable or does not match the
// certificate. They name files, never their contents.
func loadKeyPair(p stages.Params, certParam, keyParam string) (tls.Certificate, error) {
	certFile, keyFile := p.String(certParam), p.String(keyParam)
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, stages.ParamErrorf(certParam, "cannot read the certificate: %v", err)
	}
	if !hasCertificate(certPEM) {
		return tls.Certificate{}, stages.ParamErrorf(certParam, "no PEM certificate in %s", certFile)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, stages.ParamErrorf(keyParam, "cannot read the private key: %v", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The certificate parsed above: what fails is the key, or the
		// key does not go with the certificate.
		return tls.Certificate{}, stages.ParamErrorf(keyParam, "%s is not the private key of %s %s: %v", keyFile, certParam, certFile, err)
	}
	return pair, nil
}

// loadCAPool reads the PEM CA bundle of the parameter name. Its errors are
// [stages.ParamErrorf] on name: the file is missing, unreadable, or holds
// no certificate.
func loadCAPool(p stages.Params, name string) (*x509.CertPool, error) {
	file := p.String(name)
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, stages.ParamErrorf(name, "cannot read the CA bundle: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, stages.ParamErrorf(name, "no PEM certificate in %s", file)
	}
	return pool, nil
}

// hasCertificate reports whether b holds a PEM certificate that parses.
func hasCertificate(b []byte) bool {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return false
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err == nil {
			return true
		}
	}
}

// sourceTLSConfig returns the server configuration of the http source, or
// nil when tls_cert is not given: TLS 1.2 or later, HTTP/1.1 only (the
// source's limits are per connection and request as documented), and with
// tls_client_ca a client certificate signed by it required.
func sourceTLSConfig(p stages.Params) (*tls.Config, error) {
	if !p.Has(paramTLSCert) {
		return nil, nil
	}
	pair, err := loadKeyPair(p, paramTLSCert, paramTLSKey)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tlsMinVersion,
		Certificates: []tls.Certificate{pair},
		NextProtos:   []string{"http/1.1"},
	}
	if p.Has(paramTLSClientCA) {
		pool, err := loadCAPool(p, paramTLSClientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// sinkTLSConfig returns the client configuration of the http sink, or nil
// when no TLS parameter is given: TLS 1.2 or later, the servers trusted
// those signed by tls_ca (instead of the system's authorities) when it is
// given, and tls_cert presented when the server asks for a certificate.
func sinkTLSConfig(p stages.Params) (*tls.Config, error) {
	if !p.Has(paramTLSCA) && !p.Has(paramTLSCert) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tlsMinVersion}
	if p.Has(paramTLSCA) {
		pool, err := loadCAPool(p, paramTLSCA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if p.Has(paramTLSCert) {
		pair, err := loadKeyPair(p, paramTLSCert, paramTLSKey)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
