package configs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// apply applies opts to fresh nats.Options as nats.Connect would.
func apply(t *testing.T, opts []nats.Option) nats.Options {
	t.Helper()
	o := nats.GetDefaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatalf("apply option: %v", err)
		}
	}
	return o
}

// selfSigned writes a self-signed certificate and its key as PEM into dir
// and returns their paths.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile
}

// userCreds writes a .creds file for a new user signed by a new account
// and returns its path and the user JWT.
func userCreds(t *testing.T, dir string) (path, userJWT string) {
	t.Helper()
	account, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := user.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	userJWT, err = jwt.NewUserClaims(pub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "user.creds", string(creds)), userJWT
}

// userSeed writes a user NKey seed file and returns its path and the
// public key.
func userSeed(t *testing.T, dir string) (path, pub string) {
	t.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	if pub, err = user.PublicKey(); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "user.nk", string(seed)), pub
}

func TestNATSOptionsBase(t *testing.T) {
	opts, err := Settings{}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	o := apply(t, opts)
	if o.Name != ClientName || o.MaxReconnect != -1 || o.ReconnectWait != ReconnectWait {
		t.Errorf("name %q, max reconnect %d, reconnect wait %s", o.Name, o.MaxReconnect, o.ReconnectWait)
	}
	if o.User != "" || o.Token != "" || o.Nkey != "" || o.UserJWT != nil || o.TLSConfig != nil {
		t.Errorf("auth set without settings: %+v", o)
	}
}

func TestNATSOptionsAuth(t *testing.T) {
	dir := t.TempDir()
	credsFile, userJWT := userCreds(t, dir)
	seedFile, pub := userSeed(t, dir)
	tests := []struct {
		name  string
		auth  NATSAuth
		check func(t *testing.T, o nats.Options)
	}{
		{"user and password", NATSAuth{User: "ann", Password: "pw"}, func(t *testing.T, o nats.Options) {
			if o.User != "ann" || o.Password != "pw" {
				t.Errorf("user %q password %q", o.User, o.Password)
			}
		}},
		{"token", NATSAuth{Token: "t0k"}, func(t *testing.T, o nats.Options) {
			if o.Token != "t0k" {
				t.Errorf("token %q", o.Token)
			}
		}},
		{"nkey seed", NATSAuth{NKeySeedFile: seedFile}, func(t *testing.T, o nats.Options) {
			if o.Nkey != pub || o.SignatureCB == nil {
				t.Errorf("nkey %q, want %q; signature callback set: %v", o.Nkey, pub, o.SignatureCB != nil)
			}
		}},
		{"creds", NATSAuth{CredsFile: credsFile}, func(t *testing.T, o nats.Options) {
			if o.UserJWT == nil || o.SignatureCB == nil {
				t.Fatal("user JWT or signature callback not set")
			}
			got, err := o.UserJWT()
			if err != nil || got != userJWT {
				t.Errorf("user JWT %q, %v", got, err)
			}
			if _, err := o.SignatureCB([]byte("nonce")); err != nil {
				t.Errorf("sign: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := Settings{NATS: tt.auth}.NATSOptions()
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, apply(t, opts))
		})
	}
}

func TestNATSOptionsTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	opts, err := Settings{NATS: NATSAuth{TLSCA: certFile, TLSCert: certFile, TLSKey: keyFile}}.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	o := apply(t, opts)
	if o.TLSConfig == nil || o.RootCAsCB == nil || o.TLSCertCB == nil {
		t.Fatalf("TLS not configured: config %v, root CAs %v, cert %v", o.TLSConfig != nil, o.RootCAsCB != nil, o.TLSCertCB != nil)
	}
	if _, err := o.RootCAsCB(); err != nil {
		t.Errorf("root CAs: %v", err)
	}
	cert, err := o.TLSCertCB()
	if err != nil {
		t.Fatalf("client certificate: %v", err)
	}
	if cert.Leaf == nil || cert.Leaf.Subject.CommonName != "sluice test" {
		t.Errorf("client certificate %+v", cert.Leaf)
	}
}

func TestNATSOptionsErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	notPEM := writeFile(t, dir, "not.pem", "hello")
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		auth    NATSAuth
		invalid bool   // wraps ErrInvalidSettings
		want    string // in the error
	}{
		{"creds and token", NATSAuth{CredsFile: "x.creds", Token: "t"}, true, "nats.creds_file, nats.token conflict"},
		{"token and user", NATSAuth{Token: "t", User: "ann"}, true, "nats.token, nats.user conflict"},
		{"password without user", NATSAuth{Password: "pw"}, true, "nats.password needs nats.user"},
		{"key without cert", NATSAuth{TLSKey: keyFile}, true, "nats.tls_cert and nats.tls_key go together"},
		{"missing creds", NATSAuth{CredsFile: missing}, false, "nats.creds_file"},
		{"missing seed", NATSAuth{NKeySeedFile: missing}, false, "nats.nkey_seed_file"},
		{"missing CA", NATSAuth{TLSCA: missing}, false, "nats.tls_ca"},
		{"CA not PEM", NATSAuth{TLSCA: notPEM}, false, "nats.tls_ca: no PEM certificate"},
		{"cert and key swapped", NATSAuth{TLSCert: keyFile, TLSKey: certFile}, false, "nats.tls_cert and nats.tls_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Settings{NATS: tt.auth}.NATSOptions()
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrInvalidSettings) != tt.invalid {
				t.Errorf("errors.Is(%v, ErrInvalidSettings) = %v, want %v", err, !tt.invalid, tt.invalid)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}
