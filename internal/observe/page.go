package observe

import (
	"bytes"
	"crypto/sha256"
	_ "embed" // the status page
	"encoding/base64"
	"fmt"
	"net/http"
	"time"
)

// indexHTML is the status page: one self-contained file, its CSS and
// script inline, that draws the pipelines from GET /api/status.
//
//go:embed static/index.html
var indexHTML []byte

// statusPage serves the status page at GET /. The page holds no data: it
// is served without the bearer token, and its script asks /api/status
// with the token it finds in the URL fragment (#token=...), which
// browsers never send to the server nor put in a Referer.
type statusPage struct {
	body []byte
	csp  string
	etag string
	mod  time.Time
}

// newStatusPage returns the page with a Content-Security-Policy that
// allows its one inline style and one inline script by their SHA-256
// hashes, and nothing else but fetches from its own origin.
func newStatusPage(body []byte) (*statusPage, error) {
	script, err := inline(body, "script")
	if err != nil {
		return nil, err
	}
	style, err := inline(body, "style")
	if err != nil {
		return nil, err
	}
	csp := "default-src 'self'; script-src '" + hash(script) + "'; style-src '" + hash(style) + "'; " +
		"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	sum := sha256.Sum256(body)
	return &statusPage{body: body, csp: csp, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`, mod: time.Now()}, nil
}

// inline returns the content of the one <tag> element of page, exactly
// as the browser hashes it.
func inline(page []byte, tag string) ([]byte, error) {
	open, closing := []byte("<"+tag+">"), []byte("</"+tag+">")
	if bytes.Count(page, open) != 1 || bytes.Count(page, closing) != 1 {
		return nil, fmt.Errorf("observe: status page: want one <%s> element without attributes", tag)
	}
	_, rest, _ := bytes.Cut(page, open)
	content, _, _ := bytes.Cut(rest, closing)
	return bytes.Clone(content), nil
}

// hash returns a CSP source of content's SHA-256 hash.
func hash(content []byte) string {
	sum := sha256.Sum256(content)
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

func (p *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", p.etag)
	http.ServeContent(w, r, "index.html", p.mod, bytes.NewReader(p.body))
}
