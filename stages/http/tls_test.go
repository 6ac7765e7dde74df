package http

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/tlstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// tlsTestClient returns a client that trusts the CA of root (the system's
// authorities when root is ""), presents cert when it is set and the
// server asks for one, and speaks
// at most maxVersion when that is set.
func tlsTestClient(t *testing.T, root string, cert *tls.Certificate, maxVersion uint16) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MaxVersion: maxVersion}
	if maxVersion != 0 {
		tr.TLSClientConfig.MinVersion = tls.VersionTLS10 // offer it, for the server to refuse
	}
	if root != "" {
		tr.TLSClientConfig.RootCAs = tlstest.Pool(t, root)
	}
	if cert != nil {
		// Presented whatever CAs the server names as acceptable, so that
		// the server's own check is what is tested.
		tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// The http source over TLS: HTTPS only, TLS 1.2 or later, client
// certificates signed by tls_client_ca when it is set, and the token still
// asked for.
func TestHTTPSourceTLS(t *testing.T) {
	f := tlstest.New(t)
	const token = "tls-t0ken"
	serverTLS := map[string]any{"tls_cert": f.ServerCert, "tls_key": f.ServerKey}
	mutualTLS := map[string]any{"tls_cert": f.ServerCert, "tls_key": f.ServerKey, "tls_client_ca": f.CA}
	with := func(base map[string]any, more map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	client := tlstest.KeyPair(t, f.ClientCert, f.ClientKey)
	otherClient := tlstest.KeyPair(t, f.OtherClientCert, f.OtherClientKey)
	bearer := map[string]string{"Authorization": "Bearer " + token}
	for _, tc := range []struct {
		name       string
		params     map[string]any
		plain      bool             // send over plain HTTP to the TLS port
		root       string           // the CA the client trusts; "" for the system's
		cert       *tls.Certificate // the client's certificate
		maxVersion uint16
		header     map[string]string
		wantStatus int  // 0: no answer
		wantErr    bool // the TLS handshake fails
	}{
		{name: "client trusting the CA", params: serverTLS, root: f.CA, wantStatus: 202},
		{name: "client with a certificate the source does not ask for", params: serverTLS, root: f.CA, cert: &client, wantStatus: 202},
		{name: "client not trusting the CA", params: serverTLS, wantErr: true},
		{name: "plain HTTP to the TLS port", params: serverTLS, plain: true, wantStatus: 400},
		{name: "TLS 1.1 client", params: serverTLS, root: f.CA, maxVersion: tls.VersionTLS11, wantErr: true},
		{name: "mutual: client without a certificate", params: mutualTLS, root: f.CA, wantErr: true},
		{name: "mutual: client certificate signed by the CA", params: mutualTLS, root: f.CA, cert: &client, wantStatus: 202},
		{name: "mutual: client certificate signed by another CA", params: mutualTLS, root: f.CA, cert: &otherClient, wantErr: true},
		{name: "token over TLS: missing", params: with(serverTLS, map[string]any{"token": token}), root: f.CA, wantStatus: 401},
		{name: "token over TLS: given", params: with(serverTLS, map[string]any{"token": token}), root: f.CA, header: bearer, wantStatus: 202},
		{name: "token over mutual TLS: missing", params: with(mutualTLS, map[string]any{"token": token}), root: f.CA, cert: &client, wantStatus: 401},
		{name: "token over mutual TLS: given", params: with(mutualTLS, map[string]any{"token": token}), root: f.CA, cert: &client, header: bearer, wantStatus: 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, _ := newHTTPTestSource(t, with(tc.params, nil))
			base := "https://" + src.addr()
			// good is a client the source takes, for the readiness
			// check and the sentinel.
			good := tlsTestClient(t, f.CA, &client, 0)
			got := readIntoWith(t, src, good, base, true)

			url := base + "/"
			c := tlsTestClient(t, tc.root, tc.cert, tc.maxVersion)
			if tc.plain {
				url = "http://" + src.addr() + "/"
				c = testHTTPClient(t)
			}
			a := httpDo(c, http.MethodPost, url, `{"n": 1}`, tc.header)
			switch {
			case tc.wantErr:
				if a.err == nil {
					t.Fatalf("answer %d %q, want a failed TLS handshake", a.status, a.body)
				}
				t.Logf("refused as it should be: %v", a.err)
			case a.err != nil:
				t.Fatalf("want %d, got %v", tc.wantStatus, a.err)
			case a.status != tc.wantStatus:
				t.Fatalf("answer %d %q, want %d", a.status, a.body, tc.wantStatus)
			}

			// The sentinel is the first record read after the request's
			// own, if it had one.
			if s := httpDo(good, http.MethodPost, base+"/", `"sentinel"`, bearer); s.status != 202 {
				t.Fatalf("sentinel: %d %q %v", s.status, s.body, s.err)
			}
			var payloads []string
			for {
				p := stagetest.PayloadOf(t, <-got)
				if p == `"sentinel"` {
					break
				}
				payloads = append(payloads, p)
			}
			var want []string
			if tc.wantStatus == 202 {
				want = []string{`{"n": 1}`}
			}
			if !slices.Equal(payloads, want) {
				t.Errorf("records read: %q, want %q", payloads, want)
			}
		})
	}
}

// tlsParamCase is a set of parameters that building the stage must
// refuse with an error on param containing msg.
type tlsParamCase struct {
	name  string
	raw   map[string]any
	param string
	msg   string
}

// checkTLSParamErrors builds the stage typ of role from each case's
// parameters (validation first, then the constructor, which reads the
// files) and checks the error.
func checkTLSParamErrors(t *testing.T, role stages.Role, cases []tlsParamCase) {
	t.Helper()
	s := stagetest.Lookup(t, role, "http")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, errs := s.ParseParams(tc.raw)
			err := errors.Join(errs...)
			if err == nil {
				if role == stages.RoleSource {
					var src stages.Source
					if src, err = s.NewSource(p, stages.Info{}); err == nil {
						src.Close(context.Background())
					}
				} else {
					var sk stages.Sink
					if sk, err = s.NewSink(p, stages.Info{}); err == nil {
						sk.Close(context.Background())
					}
				}
			}
			var pe *stages.ParamError
			if err == nil || !errors.As(err, &pe) || pe.Param != tc.param || !errors.Is(err, stages.ErrInvalidParam) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error on %s containing %q", err, tc.param, tc.msg)
			}
		})
	}
}

func TestHTTPSourceTLSParams(t *testing.T) {
	f := tlstest.New(t)
	dir := t.TempDir()
	missing := dir + "/missing.pem"
	src := func(more map[string]any) map[string]any {
		raw := map[string]any{"listen": "127.0.0.1:0"}
		for k, v := range more {
			raw[k] = v
		}
		return raw
	}
	checkTLSParamErrors(t, stages.RoleSource, []tlsParamCase{
		{"cert without key", src(map[string]any{"tls_cert": f.ServerCert}), "tls_key", "is required with tls_cert"},
		{"key without cert", src(map[string]any{"tls_key": f.ServerKey}), "tls_cert", "is required with tls_key"},
		{"empty cert", src(map[string]any{"tls_cert": "", "tls_key": f.ServerKey}), "tls_cert", "must not be empty"},
		{"client CA without cert", src(map[string]any{"tls_client_ca": f.CA}), "tls_client_ca", "needs tls_cert"},
		{"missing cert file", src(map[string]any{"tls_cert": missing, "tls_key": f.ServerKey}), "tls_cert", "no such file"},
		{"unreadable cert file", src(map[string]any{"tls_cert": dir, "tls_key": f.ServerKey}), "tls_cert", "is a directory"},
		{"cert file without a certificate", src(map[string]any{"tls_cert": f.ServerKey, "tls_key": f.ServerKey}), "tls_cert", "no PEM certificate"},
		{"missing key file", src(map[string]any{"tls_cert": f.ServerCert, "tls_key": missing}), "tls_key", "no such file"},
		{"key of another certificate", src(map[string]any{"tls_cert": f.ServerCert, "tls_key": f.ClientKey}), "tls_key", "is not the private key of tls_cert"},
		{"key file without a key", src(map[string]any{"tls_cert": f.ServerCert, "tls_key": f.CA}), "tls_key", "is not the private key of tls_cert"},
		{"missing client CA file", src(map[string]any{"tls_cert": f.ServerCert, "tls_key": f.ServerKey, "tls_client_ca": missing}), "tls_client_ca", "no such file"},
		{"client CA file without a certificate", src(map[string]any{"tls_cert": f.ServerCert, "tls_key": f.ServerKey, "tls_client_ca": f.ServerKey}), "tls_client_ca", "no PEM certificate"},
	})
}

func TestHTTPSinkTLSParams(t *testing.T) {
	f := tlstest.New(t)
	missing := t.TempDir() + "/missing.pem"
	sink := func(url string, more map[string]any) map[string]any {
		raw := map[string]any{"url": url}
		for k, v := range more {
			raw[k] = v
		}
		return raw
	}
	const https = "https://127.0.0.1:1/"
	checkTLSParamErrors(t, stages.RoleSink, []tlsParamCase{
		{"CA with an http URL", sink("http://127.0.0.1:1/", map[string]any{"tls_ca": f.CA}), "tls_ca", "only applies to an https:// URL"},
		{"cert with an http URL", sink("http://127.0.0.1:1/", map[string]any{"tls_cert": f.ClientCert, "tls_key": f.ClientKey}), "tls_cert", "only applies to an https:// URL"},
		{"cert without key", sink(https, map[string]any{"tls_cert": f.ClientCert}), "tls_key", "is required with tls_cert"},
		{"key without cert", sink(https, map[string]any{"tls_key": f.ClientKey}), "tls_cert", "is required with tls_key"},
		{"empty CA", sink(https, map[string]any{"tls_ca": ""}), "tls_ca", "must not be empty"},
		{"missing CA file", sink(https, map[string]any{"tls_ca": missing}), "tls_ca", "no such file"},
		{"CA file without a certificate", sink(https, map[string]any{"tls_ca": f.ClientKey}), "tls_ca", "no PEM certificate"},
		{"missing cert file", sink(https, map[string]any{"tls_cert": missing, "tls_key": f.ClientKey}), "tls_cert", "no such file"},
		{"key of another certificate", sink(https, map[string]any{"tls_cert": f.ClientCert, "tls_key": f.ServerKey}), "tls_key", "is not the private key of tls_cert"},
	})
}

// An http sink sends to an http source over mutual TLS with a token: the
// records arrive, one request each or as a batch; a sink without a client
// certificate, or trusting another CA, reaches nothing and reports an
// outage.
func TestHTTPSinkToSourceMutualTLS(t *testing.T) {
	f := tlstest.New(t)
	const token = "mtls-t0ken"
	src, _ := newHTTPTestSource(t, map[string]any{
		"path": "/events", "format": "jsonl", "token": token,
		"tls_cert": f.ServerCert, "tls_key": f.ServerKey, "tls_client_ca": f.CA,
	})
	base := "https://" + src.addr()
	client := tlstest.KeyPair(t, f.ClientCert, f.ClientKey)
	got := readIntoWith(t, src, tlsTestClient(t, f.CA, &client, 0), base, true)

	auth := map[string]any{"Authorization": "Bearer " + token}
	sinkParams := func(more map[string]any) map[string]any {
		raw := map[string]any{"url": base + "/events", "headers": auth, "retries": 0}
		for k, v := range more {
			raw[k] = v
		}
		return raw
	}
	mutual := map[string]any{"tls_ca": f.CA, "tls_cert": f.ClientCert, "tls_key": f.ClientKey}
	for _, tc := range []struct {
		name    string
		params  map[string]any
		want    []string // the records the source reads
		outcome string   // of each record; "" for success
	}{
		{name: "one request per record", params: mutual, want: []string{`{"n":1}`, `{"n":2}`}},
		{name: "one request per batch", params: map[string]any{"tls_ca": f.CA, "tls_cert": f.ClientCert, "tls_key": f.ClientKey, "batch": true}, want: []string{`[{"n":1},{"n":2}]`}},
		{name: "no client certificate", params: map[string]any{"tls_ca": f.CA}, outcome: "outage"},
		{name: "trusting another CA", params: map[string]any{"tls_ca": f.OtherCA, "tls_cert": f.ClientCert, "tls_key": f.ClientKey}, outcome: "outage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sk := stagetest.NewSink(t, "http", sinkParams(tc.params), stages.Info{})
			err := sk.Write(context.Background(), stagetest.Msgs(`{"n":1}`, `{"n":2}`))
			if tc.outcome == "" {
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
			} else {
				for i, e := range batchErrs(t, err, 2) {
					if outcome(e) != tc.outcome {
						t.Errorf("record %d: %v, want %s", i, e, tc.outcome)
					}
				}
			}
			var read []string
			for range tc.want {
				read = append(read, stagetest.PayloadOf(t, <-got))
			}
			if !slices.Equal(read, tc.want) {
				t.Errorf("records read: %q, want %q", read, tc.want)
			}
		})
	}
	// Nothing more entered the pipeline.
	select {
	case m := <-got:
		t.Errorf("unexpected record %q", stagetest.PayloadOf(t, m))
	default:
	}
}

// The source warns when it listens beyond loopback without
// authentication, or with a token sent in clear; never with the token.
func TestHTTPSourceListenWarnings(t *testing.T) {
	f := tlstest.New(t)
	const token = "warn-t0ken"
	tlsParams := map[string]any{"tls_cert": f.ServerCert, "tls_key": f.ServerKey}
	for _, tc := range []struct {
		name   string
		listen string
		params map[string]any
		warn   string // "" for no warning
	}{
		{name: "loopback, no token", listen: "127.0.0.1:0"},
		{name: "loopback, token, no TLS", listen: "127.0.0.1:0", params: map[string]any{"token": token}},
		{name: "all interfaces, no token", listen: "0.0.0.0:0", warn: "without authentication"},
		{name: "all interfaces, TLS, no token", listen: "0.0.0.0:0", params: tlsParams, warn: "without authentication"},
		{name: "all interfaces, token, no TLS", listen: "0.0.0.0:0", params: map[string]any{"token": token}, warn: "token crosses the network in clear"},
		{name: "all interfaces, token, TLS", listen: "0.0.0.0:0", params: map[string]any{"token": token, "tls_cert": f.ServerCert, "tls_key": f.ServerKey}},
		{name: "all interfaces, mutual TLS, no token", listen: "0.0.0.0:0", params: map[string]any{"tls_cert": f.ServerCert, "tls_key": f.ServerKey, "tls_client_ca": f.CA}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := map[string]any{"listen": tc.listen}
			for k, v := range tc.params {
				raw[k] = v
			}
			var logs stagetest.LockedBuffer
			info := stages.Info{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
			stagetest.NewSource(t, "http", raw, info)
			out := logs.String()
			if tc.warn == "" && out != "" {
				t.Errorf("logged %q, want no warning", out)
			}
			if tc.warn != "" && (!strings.Contains(out, "level=WARN") || !strings.Contains(out, tc.warn)) {
				t.Errorf("logged %q, want a warning with %q", out, tc.warn)
			}
			if strings.Contains(out, token) {
				t.Errorf("the log shows the token: %q", out)
			}
		})
	}
}
