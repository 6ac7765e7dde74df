package nats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// HeaderSourceSubject is set by the nats and jetstream sources on every
// record: the subject the message had where the source read it, outside
// the pipeline (expressions see it as msg.headers["Sluice-Source-Subject"]).
const HeaderSourceSubject = "Sluice-Source-Subject"

// Parameters of the NATS stages for a connection of their own.
var natsConnParams = []stages.Param{
	{Name: "url", Type: stages.TypeString, Doc: "NATS server URL, or several comma-separated, to connect to instead of the pipeline's own connection; the stage then owns that connection and closes it. User and password in the URL work but are never logged: prefer creds, or ${VAR} interpolation."},
	{Name: "creds", Type: stages.TypeString, Path: true, Doc: "Path of a NATS credentials file (user JWT and NKey seed) for the connection to url."},
}

// natsConnDoc is the paragraph every NATS stage's Doc has about its
// connection.
const natsConnDoc = `By default the stage uses the pipeline's own NATS connection ` +
	`(other clients reach that server when it is one of its own, sluice run ` +
	`--nats, or when the embedded one listens, sluice run --listen). ` +
	`With url it connects to that server instead (with the credentials file ` +
	`creds, if given), reconnecting for as long as it runs, and closes the ` +
	`connection when it closes; the URL is logged without its user and ` +
	`password, and the credentials never are.`

// checkNATSConn validates url and creds. It never quotes the URL, which
// may hold a password.
func checkNATSConn(p stages.Params) error {
	if p.Has("creds") {
		if !p.Has("url") {
			return stages.ParamErrorf("creds", "needs url: the pipeline's own connection already has its credentials")
		}
		if strings.TrimSpace(p.String("creds")) == "" {
			return stages.ParamErrorf("creds", "must not be empty")
		}
	}
	if !p.Has("url") {
		return nil
	}
	raw := strings.TrimSpace(p.String("url"))
	if raw == "" {
		return stages.ParamErrorf("url", "must not be empty")
	}
	for i, u := range strings.Split(raw, ",") {
		if _, err := parseNATSURL(u); err != nil {
			return stages.ParamErrorf("url", "server %d of the list: %v", i+1, err)
		}
	}
	return nil
}

// parseNATSURL parses one server URL as nats.go does ("host:port" means
// nats://host:port). Its error does not quote the URL.
func parseNATSURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty URL")
	}
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, errors.New("not a valid URL such as nats://host:4222")
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return nil, fmt.Errorf("unknown scheme %q: want nats, tls, ws or wss", u.Scheme)
	}
	return u, nil
}

// redactURL returns a URL list without user names and passwords, to log.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, s := range parts {
		u, err := parseNATSURL(s)
		if err != nil {
			parts[i] = "(invalid URL)"
			continue
		}
		u.User = nil
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// natsConn is the connection a NATS stage uses: the pipeline's, or one
// the stage opened and owns.
type natsConn struct {
	nc    *nats.Conn
	owned bool
}

// openNATSConn returns the pipeline's connection, or with url a
// connection of the stage's own.
func openNATSConn(p stages.Params, info stages.Info, log *slog.Logger) (natsConn, error) {
	if !p.Has("url") {
		if info.Conn == nil {
			return natsConn{}, errors.New("no NATS connection: the stage runs outside a pipeline; give url")
		}
		return natsConn{nc: info.Conn}, nil
	}
	raw := p.String("url")
	shown := redactURL(raw)
	name := "sluice"
	if info.Pipeline != "" || info.Stage != "" {
		name += " " + info.Pipeline + "/" + info.Stage
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		// A subscription the server refuses fails Read, instead of
		// waiting for ever.
		nats.PermissionErrOnSubscribe(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS", "url", shown, "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("reconnected to NATS", "url", shown) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if !errors.Is(err, nats.ErrSlowConsumer) { // the nats source reports its own
				log.Warn("NATS error", "url", shown, "err", err)
			}
		}),
	}
	if creds := p.String("creds"); creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	nc, err := nats.Connect(raw, opts...)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // it would quote the URL, password and all
			err = errors.New("invalid URL")
		}
		return natsConn{}, fmt.Errorf("connect to %s: %w", shown, err)
	}
	return natsConn{nc: nc, owned: true}, nil
}

// close closes the connection if the stage owns it, after sending what
// is buffered.
func (c natsConn) close() {
	if c.owned && c.nc != nil {
		if c.nc.IsConnected() {
			_ = c.nc.FlushTimeout(time.Second)
		}
		c.nc.Close()
	}
}

// stageLogger returns info's logger, or one that discards.
func stageLogger(info stages.Info) *slog.Logger {
	if info.Logger != nil {
		return info.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// withDefaultTimeout bounds ctx by d unless it has a deadline already.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// hasPrefixFold reports whether s begins with prefix, ignoring case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// inboundHeaders returns the headers that a record read from a message
// outside the pipeline keeps: all of them except the Nats-* ones, which
// would steer the pipeline's own publish (Nats-Expected-Stream,
// Nats-Rollup, Nats-TTL...), and the Sluice-* ones the runner sets
// (dead-letter headers, Sluice-Origin); Sluice-Key and Sluice-Event-Time,
// which a publisher may set, pass. With keepID, Nats-Msg-Id passes too.
func inboundHeaders(h nats.Header, keepID bool) nats.Header {
	out := make(nats.Header, len(h)+2)
	for k, v := range h {
		switch {
		case k == stages.HeaderMsgID && keepID:
		case hasPrefixFold(k, "Nats-"):
			continue
		case k == stages.HeaderKey || k == stages.HeaderEventTime:
		case hasPrefixFold(k, "Sluice-"):
			continue
		}
		out[k] = v
	}
	return out
}

// outboundHeaders returns the headers a sink publishes a record with:
// all of its headers except the Nats-* ones other than Nats-Msg-Id,
// which would make the server check or change what it stores. It
// returns h itself when there is nothing to leave out.
func outboundHeaders(h nats.Header) nats.Header {
	drop := false
	for k := range h {
		if k != stages.HeaderMsgID && hasPrefixFold(k, "Nats-") {
			drop = true
			break
		}
	}
	if !drop {
		return h
	}
	out := make(nats.Header, len(h))
	for k, v := range h {
		if k == stages.HeaderMsgID || !hasPrefixFold(k, "Nats-") {
			out[k] = v
		}
	}
	return out
}

// checkSubject reports what is wrong with a subject: empty, white space,
// an empty token, or (unless wildcards) a wildcard token. With
// wildcards, '>' may only be the last token.
func checkSubject(s string, wildcards bool) error {
	if s == "" {
		return errors.New("empty subject")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("subject contains white space")
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return errors.New("subject has an empty token (two dots, or a dot at an end)")
		case (t == "*" || t == ">") && !wildcards:
			return fmt.Errorf("wildcard %q in a subject to publish to", t)
		case t == ">" && i != len(tokens)-1:
			return errors.New("wildcard \">\" must be the last token")
		}
	}
	return nil
}

// subjectsOverlap reports whether some subject matches both filters a
// and b, which may have wildcards.
func subjectsOverlap(a, b string) bool {
	ta, tb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(ta) && i < len(tb); i++ {
		if ta[i] == ">" || tb[i] == ">" {
			return true
		}
		if ta[i] != tb[i] && ta[i] != "*" && tb[i] != "*" {
			return false
		}
	}
	return len(ta) == len(tb)
}

// subjectMatches reports whether the literal subject s matches filter.
func subjectMatches(filter, s string) bool {
	tf, ts := strings.Split(filter, "."), strings.Split(s, ".")
	for i, t := range tf {
		switch {
		case t == ">":
			return i < len(ts)
		case i == len(ts):
			return false
		case t != "*" && t != ts[i]:
			return false
		}
	}
	return len(tf) == len(ts)
}

// subjectTemplate is a subject to publish to in which {field} is
// replaced by a field of the record; {a.b} is field b of object a.
type subjectTemplate struct {
	src   string
	parts []subjectPart // nil for a literal subject
}

type subjectPart struct {
	lit  string
	path []string // set for a placeholder
}

const subjectTemplateDoc = `{field} in it becomes that field of the record ({a.b}: field b of the object in field a), a string, an integer or a boolean that is not empty and has no '.', '*', '>' or white space; a record without it is dead-lettered`

// parseSubjectTemplate parses and checks a subject template: with each
// placeholder replaced by a token it must be a valid subject to publish
// to.
func parseSubjectTemplate(s string) (*subjectTemplate, error) {
	t := &subjectTemplate{src: s}
	var sample strings.Builder
	rest := s
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			t.parts = append(t.parts, subjectPart{lit: rest})
			sample.WriteString(rest)
			break
		}
		if rest[open] == '}' {
			return nil, errors.New("'}' without '{'")
		}
		if open > 0 {
			t.parts = append(t.parts, subjectPart{lit: rest[:open]})
			sample.WriteString(rest[:open])
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] != '}' {
			return nil, errors.New("'{' without '}'")
		}
		name := rest[open+1 : open+1+end]
		path := strings.Split(name, ".")
		for _, p := range path {
			if strings.TrimSpace(p) == "" {
				return nil, fmt.Errorf("placeholder {%s} names no field", name)
			}
		}
		t.parts = append(t.parts, subjectPart{path: path})
		sample.WriteString("x")
		rest = rest[open+2+end:]
	}
	if err := checkSubject(sample.String(), false); err != nil {
		return nil, err
	}
	if len(t.parts) == 1 && t.parts[0].path == nil {
		t.parts = nil
	}
	return t, nil
}

// literal reports whether the template has no placeholder.
func (t *subjectTemplate) literal() bool { return t.parts == nil }

// render returns the subject for m. A record that lacks a field of the
// template, or has a value that cannot be a subject token, gives a
// permanent error naming the field (never quoting the value).
func (t *subjectTemplate) render(m *stages.Message) (string, error) {
	if t.parts == nil {
		return t.src, nil
	}
	rec, err := m.Record()
	if err != nil {
		return "", fmt.Errorf("subject %s: %w", t.src, err)
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.path == nil {
			b.WriteString(p.lit)
			continue
		}
		tok, err := subjectToken(rec, p.path)
		if err != nil {
			return "", stages.Permanent(fmt.Errorf("subject %s: field %s: %w", t.src, strings.Join(p.path, "."), err))
		}
		b.WriteString(tok)
	}
	return b.String(), nil
}

// subjectToken returns the value at path in rec as a subject token.
func subjectToken(rec map[string]any, path []string) (string, error) {
	var v any = rec
	for i, name := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("%s is a JSON %s, not an object", strings.Join(path[:i], "."), errtext.JSONKind(v))
		}
		if v, ok = obj[name]; !ok {
			return "", errors.New("missing")
		}
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case int64:
		s = strconv.FormatInt(x, 10)
	case float64:
		if x != float64(int64(x)) {
			return "", errors.New("a number that is not an integer cannot be a subject token")
		}
		s = strconv.FormatInt(int64(x), 10)
	case bool:
		s = strconv.FormatBool(x)
	default:
		return "", fmt.Errorf("a JSON %s cannot be a subject token", errtext.JSONKind(v))
	}
	switch {
	case s == "":
		return "", errors.New("empty")
	case strings.ContainsAny(s, ".*> \t\r\n"):
		return "", errors.New("contains '.', '*', '>' or white space, which a subject token cannot")
	}
	return s, nil
}
