// Package bearer checks HTTP bearer tokens ("Authorization: Bearer TOKEN")
// in constant time, for the servers sluice runs: the http source and the
// metrics endpoint.
package bearer

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Token is the digest of a token; the zero value allows every request.
type Token []byte

// New returns the Token of token; "" gives the zero value.
func New(token string) Token {
	if token == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// Allows reports whether r carries the token (scheme case-insensitive),
// comparing digests in constant time; always true for the zero Token.
func (t Token) Allows(r *http.Request) bool {
	if t == nil {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], t) == 1
}
