package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/bearer"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
)

// Formats of the http source's request bodies; jsonl and lines are shared
// with the file formats.
const formatJSON = "json"

// Defaults and limits of the http source.
const (
	httpDefaultListen     = "127.0.0.1:8080"
	httpDefaultMaxBody    = 1 << 20
	httpDefaultQueue      = 64
	httpDefaultAckTimeout = 30 * time.Second
	// httpDefaultMaxConcurrent and httpDefaultMaxBuffered bound the
	// requests on path handled at once and the body bytes they hold in
	// memory together.
	httpDefaultMaxConcurrent = 64
	httpDefaultMaxBuffered   = 64 << 20
	// httpDefaultReadTimeout bounds how long a client may take to send a
	// request's body.
	httpDefaultReadTimeout = 30 * time.Second
	// httpBodyChunk is what a body of unknown length (chunked) reserves of
	// max_buffered at a time as it grows.
	httpBodyChunk = 64 << 10
	// httpRetryAfter is the Retry-After, in seconds, of a 503 answer.
	httpRetryAfter = "1"
	// httpMaxIdempotencyKey is the longest Idempotency-Key accepted.
	httpMaxIdempotencyKey = 200
	// httpShutdownTimeout bounds Close when its context has no deadline.
	httpShutdownTimeout = 5 * time.Second
	// httpReadHeaderTimeout bounds how long a client may take to send a
	// request's headers (read_timeout when that is shorter), so that slow
	// clients cannot hold connections open for ever; httpIdleTimeout
	// closes idle keep-alive connections.
	httpReadHeaderTimeout = 10 * time.Second
	httpIdleTimeout       = 2 * time.Minute
)

// idempotencyKeyHeader is the request header (http source) and the header
// sent (http sink) that identifies a record or request for deduplication.
const idempotencyKeyHeader = "Idempotency-Key"

// maxTraceHeader bounds the traceparent and tracestate request headers
// kept on records (the W3C spec's tracestate holds at most 32 members of
// 256 characters; a longer one is dropped, not cut).
const maxTraceHeader = 512

// keepTraceContext gives every record of msgs the W3C trace context of
// the request headers h, if it has one.
func keepTraceContext(h http.Header, msgs []*stages.Message) {
	tp := h.Get(stages.HeaderTraceParent)
	if tp == "" || len(tp) > maxTraceHeader {
		return
	}
	ts := h.Get(stages.HeaderTraceState)
	for _, m := range msgs {
		if m.Header == nil {
			m.Header = make(stages.Header, 2)
		}
		m.Header[stages.HeaderTraceParent] = []string{tp}
		if ts != "" && len(ts) <= maxTraceHeader {
			m.Header[stages.HeaderTraceState] = []string{ts}
		}
	}
}

func httpSourceSpec() stages.Spec {
	return stages.Spec{
		Name:    "http",
		Summary: "Receive records posted over HTTP, answering once JetStream has them",
		Doc: `Runs an HTTP server on listen (loopback by default: give an address such ` +
			`as 0.0.0.0:8080 to accept other hosts, and set token then). A POST to ` +
			`path carries records in its body: with format json the body is one ` +
			`JSON record; with jsonl, one JSON record per non-blank line; with ` +
			`lines, each line (blank ones included, a final line ending not making ` +
			`an empty one) is a record of raw bytes. JSON bodies are checked ` +
			`before anything is stored, with the decoder and limits of the ` +
			`pipeline's stages (nesting at most 4095 deep): a body or line that ` +
			`is not valid JSON is answered 400 with the reason and the byte it ` +
			`was found at, and none of the request's records ` +
			`enter the pipeline (nothing of it goes to the dead-letter stream: ` +
			`the client is told and can correct it). Payloads pass on as sent.

The answer waits until JetStream has stored every record of the request: ` +
			`202 Accepted with {"accepted": N} then, so a client that got 202 knows ` +
			`its records are durable. Other answers: 405 for a method other than ` +
			`POST (with Allow), 401 when token is set and the request lacks ` +
			`"Authorization: Bearer TOKEN" (compared in constant time, never ` +
			`logged), 413 for a body longer than max_body, 400 for a bad body or ` +
			`Idempotency-Key, 422 when the pipeline refused records (one too large ` +
			`for NATS: it went to the dead-letter stream), and 503 with ` +
			`Retry-After when the pipeline is not reading the source (starting or ` +
			`stopping), queue requests already wait to be read, or JetStream did ` +
			`not confirm within ack_timeout. Error answers are JSON: {"error": "..."}.

Memory is bounded however clients behave: at most max_concurrent ` +
			`requests to path are handled at once (from reading the body to the ` +
			`answer), and their bodies hold at most max_buffered bytes together ` +
			`(a body with a Content-Length reserves it whole as it starts, a ` +
			`chunked one as it grows); a request past either limit is answered ` +
			`503 with Retry-After at once, without its body being read. A client ` +
			`has 10 seconds (or read_timeout if shorter) to send its headers and ` +
			`read_timeout to send its body: a slower one is answered 408 and ` +
			`cut off.

Delivery is at-least-once: after a 503 some records of the request may ` +
			`still be stored, so a client retries. A request with an ` +
			`Idempotency-Key header (up to 200 visible ASCII characters) is ` +
			`stored once however often it is retried within the pipeline's ` +
			`dedup_window (in the same run of the pipeline, resumed or not): its ` +
			`records are identified by the key (and, for several records, their ` +
			`index in the body), so a second request with the key stores nothing ` +
			`new whatever its body. Without it, a retry may store records twice. The source cannot resume: what a client has not ` +
			`been answered 202 for is its to send again.

A W3C traceparent request header (with tracestate) is kept on every ` +
			`record of the request: with tracing on, their traces continue the ` +
			`client's.

With tls_cert and tls_key the source serves HTTPS only (TLS 1.2 or later, ` +
			`HTTP/1.1); a plain HTTP request to it is answered 400. With ` +
			`tls_client_ca as well, a client must present a certificate signed by ` +
			`that CA (mutual TLS) or the handshake fails; the token, if set, is ` +
			`still required. The files are read once, when the stage starts, and ` +
			`a missing or unreadable file, or a key that does not match the ` +
			`certificate, stops it with an error naming the parameter (sluice ` +
			`validate checks only that both or neither of tls_cert and tls_key ` +
			`are given: the files need only exist on the host that runs the ` +
			`stage); replacing them takes a restart. Without TLS the server is ` +
			`plain HTTP: a token then crosses the network in clear, so beyond ` +
			`loopback terminate TLS in front of it (a proxy) or set tls_cert; ` +
			`the source logs a warning when it listens beyond loopback with a ` +
			`token and no TLS, and when it listens there with no authentication ` +
			`at all (neither token nor tls_client_ca).

A GET of health_path answers 200 while the pipeline reads the source and ` +
			`503 otherwise, for readiness probes. The source is ` +
			`unbounded: the run goes on until it is stopped; stopping answers ` +
			`waiting requests 503 and shuts the server down gracefully.

Example:

    - name: ingest
      source: http
      with:
        listen: 127.0.0.1:8080
        path: /events
        format: jsonl
        token: ${INGEST_TOKEN}
        tls_cert: /etc/sluice/tls/ingest.pem
        tls_key: /etc/sluice/tls/ingest-key.pem`,
		Params: []stages.Param{
			{Name: "listen", Type: stages.TypeString, Default: httpDefaultListen, Doc: "The address to listen on, host:port; port 0 picks a free one (it is logged)."},
			{Name: "path", Type: stages.TypeString, Default: "/", Doc: "The URL path that takes records."},
			{Name: "format", Type: stages.TypeString, Default: formatJSON, Enum: []string{formatJSON, records.JSONL, records.Lines}, Doc: "Body format: json (the body is one JSON record), jsonl (one JSON record per non-blank line) or lines (each line a raw record)."},
			{Name: "max_body", Type: stages.TypeInt, Default: httpDefaultMaxBody, Doc: "The largest body accepted, in bytes; a longer one is answered 413."},
			{Name: "token", Type: stages.TypeString, Doc: "If set, requests must carry \"Authorization: Bearer TOKEN\"; take it from the environment with ${VAR}."},
			{Name: "queue", Type: stages.TypeInt, Default: httpDefaultQueue, Doc: "How many requests may wait for the pipeline to read them; more are answered 503."},
			{Name: "max_concurrent", Type: stages.TypeInt, Default: httpDefaultMaxConcurrent, Doc: "How many requests to path are handled at once, queued or waiting for JetStream included; more are answered 503."},
			{Name: "max_buffered", Type: stages.TypeInt, Default: httpDefaultMaxBuffered, Doc: "How many bytes of request bodies are held in memory at once, over all requests; at least max_body. A request that would go over is answered 503."},
			{Name: "read_timeout", Type: stages.TypeDuration, Default: httpDefaultReadTimeout, Doc: "How long a client may take to send a request's body (and, up to 10s, its headers); a slower one is answered 408 and cut off."},
			{Name: "ack_timeout", Type: stages.TypeDuration, Default: httpDefaultAckTimeout, Doc: "How long a request waits for JetStream to store its records before it is answered 503."},
			{Name: "health_path", Type: stages.TypeString, Default: "/healthz", Doc: "The URL path of the readiness check (GET); empty for none."},
			{Name: paramTLSCert, Type: stages.TypeString, Doc: "A PEM file holding the server's certificate (and any intermediates after it); with tls_key, the source serves HTTPS only, TLS 1.2 or later."},
			{Name: paramTLSKey, Type: stages.TypeString, Doc: "A PEM file holding the private key of tls_cert; required with it."},
			{Name: paramTLSClientCA, Type: stages.TypeString, Doc: "A PEM file of CA certificates; with it (and tls_cert), clients must present a certificate signed by one of them (mutual TLS)."},
		},
		Check:     checkHTTPSource,
		NewSource: newHTTPSource,
	}
}

func checkHTTPSource(p stages.Params) error {
	host, port, err := net.SplitHostPort(p.String("listen"))
	if err != nil {
		return stages.ParamErrorf("listen", "want host:port, such as 127.0.0.1:8080 (got %q)", p.String("listen"))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return stages.ParamErrorf("listen", "port must be a number from 0 to 65535 (got %q)", port)
	}
	_ = host // empty listens on every interface, as given
	path := p.String("path")
	if !strings.HasPrefix(path, "/") {
		return stages.ParamErrorf("path", "must start with / (got %q)", path)
	}
	if h := p.String("health_path"); h != "" {
		if !strings.HasPrefix(h, "/") {
			return stages.ParamErrorf("health_path", "must start with / (got %q)", h)
		}
		if h == path {
			return stages.ParamErrorf("health_path", "must differ from path (both are %q)", h)
		}
	}
	if n := p.Int("max_body"); n < 1 {
		return stages.ParamErrorf("max_body", "must be >= 1 (got %d)", n)
	}
	if n := p.Int("queue"); n < 1 {
		return stages.ParamErrorf("queue", "must be >= 1 (got %d)", n)
	}
	if n := p.Int("max_concurrent"); n < 1 {
		return stages.ParamErrorf("max_concurrent", "must be >= 1 (got %d)", n)
	}
	if n, body := p.Int("max_buffered"), p.Int("max_body"); n < body {
		return stages.ParamErrorf("max_buffered", "must be >= max_body (%d), or no body of max_body could be taken (got %d)", body, n)
	}
	if d := p.Duration("read_timeout"); d <= 0 {
		return stages.ParamErrorf("read_timeout", "must be > 0 (got %s)", d)
	}
	if d := p.Duration("ack_timeout"); d <= 0 {
		return stages.ParamErrorf("ack_timeout", "must be > 0 (got %s)", d)
	}
	if err := checkTLSPair(p, paramTLSCert, paramTLSKey); err != nil {
		return err
	}
	if err := checkTLSFile(p, paramTLSClientCA); err != nil {
		return err
	}
	if p.Has(paramTLSClientCA) && !p.Has(paramTLSCert) {
		return stages.ParamErrorf(paramTLSClientCA, "needs tls_cert and tls_key: client certificates are asked for over TLS only")
	}
	if p.Has("token") {
		tok := p.String("token")
		if tok == "" {
			return stages.ParamErrorf("token", "must not be empty (an unset ${VAR}?); leave token out for no authentication")
		}
		if strings.ContainsAny(tok, " \t\r\n") {
			return stages.ParamErrorf("token", "must not contain white space")
		}
	}
	return nil
}

// httpSource serves HTTP and hands Read the records of each request taken,
// through a bounded queue. A request waits, in its handler, until every one
// of its records is acknowledged (see [stages.Message.OnAck]).
type httpSource struct {
	log        *slog.Logger
	path       string
	health     string
	format     string
	maxBody    int64
	token      bearer.Token // nil without a token
	ackTimeout time.Duration
	// readTimeout bounds the reading of a body; slots and buffered bound
	// the requests handled at once and the body bytes they hold.
	readTimeout time.Duration
	slots       chan struct{}
	buffered    *byteBudget

	ln       net.Listener
	srv      *http.Server
	served   chan struct{} // closed when Serve has returned
	serveErr error         // why Serve returned, set before served is closed

	ch chan *ingest // requests taken, not yet read

	mu      sync.Mutex
	reading bool // a Read is under way or the pipeline reads on; requests are taken
	closed  bool

	closing   chan struct{} // closed by Close: waiting handlers answer 503
	closeOnce sync.Once
	closeErr  error

	cur *ingest // the request whose records Read is returning; Read's own
}

var _ stages.Source = (*httpSource)(nil)

// errHTTPStopping is what a request waits on in vain when the pipeline stops
// reading the source.
var errHTTPStopping = errors.New("the pipeline is not reading records")

func newHTTPSource(p stages.Params, info stages.Info) (stages.Source, error) {
	if err := checkHTTPSource(p); err != nil {
		return nil, err
	}
	log := info.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &httpSource{
		log:         log,
		path:        p.String("path"),
		health:      p.String("health_path"),
		format:      p.String("format"),
		maxBody:     int64(p.Int("max_body")),
		ackTimeout:  p.Duration("ack_timeout"),
		readTimeout: p.Duration("read_timeout"),
		slots:       make(chan struct{}, p.Int("max_concurrent")),
		buffered:    &byteBudget{max: int64(p.Int("max_buffered"))},
		served:      make(chan struct{}),
		ch:          make(chan *ingest, p.Int("queue")),
		closing:     make(chan struct{}),
	}
	if p.Has("token") {
		s.token = bearer.New(p.String("token"))
	}
	tlsConfig, err := sourceTLSConfig(p)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", p.String("listen"))
	if err != nil {
		return nil, fmt.Errorf("http: listen: %w", err)
	}
	s.ln = ln
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: min(httpReadHeaderTimeout, s.readTimeout),
		// No ReadTimeout: serveRecords sets the body's deadline itself,
		// and lifts it once the body is read, so that a request waiting
		// for JetStream is not cut off.
		IdleTimeout:    httpIdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// HTTP/1.1 only, over TLS too: the limits above are per
		// connection and request.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	mode := "none"
	switch {
	case tlsConfig != nil && tlsConfig.ClientAuth == tls.RequireAndVerifyClientCert:
		mode = "mutual"
	case tlsConfig != nil:
		mode = "server"
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		switch {
		case s.token == nil && mode != "mutual":
			log.Warn("http source listens beyond this host without authentication: set token or tls_client_ca", "addr", ln.Addr().String())
		case s.token != nil && tlsConfig == nil:
			// Not refused: TLS may be terminated by a proxy in front.
			log.Warn("http source listens beyond this host with a token but without TLS: the token crosses the network in clear unless a TLS-terminating proxy is in front; set tls_cert and tls_key", "addr", ln.Addr().String())
		}
	}
	log.Info("http source listening", "addr", ln.Addr().String(), "path", s.path, "tls", mode)
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
		}
	}()
	return s, nil
}

// addr returns the address the server listens on, for tests that listen on
// port 0.
func (s *httpSource) addr() string { return s.ln.Addr().String() }

// ingest is one request's records on their way into the pipeline.
type ingest struct {
	msgs []*stages.Message
	next int // the index of the next record Read returns

	mu       sync.Mutex
	pending  int   // records whose outcome is not known yet
	accepted int   // records JetStream stored
	refused  int   // records the pipeline refused (dead-lettered or dropped)
	refusal  error // the first refusal
	failure  error // the first other failure: the record was not stored
	done     chan struct{}
}

func newIngest(msgs []*stages.Message) *ingest {
	in := &ingest{msgs: msgs, pending: len(msgs), done: make(chan struct{})}
	for _, m := range msgs {
		m.OnAck(in.ack)
	}
	return in
}

// ack records the outcome of one record.
func (in *ingest) ack(err error) { in.settle(1, err) }

// settle records the outcome of n records; the last one closes done.
func (in *ingest) settle(n int, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.pending == 0 {
		return
	}
	n = min(n, in.pending)
	switch {
	case err == nil:
		in.accepted += n
	case errors.Is(err, stages.ErrDeadLettered):
		in.refused += n
		if in.refusal == nil {
			in.refusal = err
		}
	default:
		if in.failure == nil {
			in.failure = err
		}
	}
	in.pending -= n
	if in.pending == 0 {
		close(in.done)
	}
}

// abandon fails the records of in that Read has not returned.
func (in *ingest) abandon(err error) {
	if n := len(in.msgs) - in.next; n > 0 {
		in.next = len(in.msgs)
		in.settle(n, err)
	}
}

// Read returns the next record of the requests taken, in order. While no
// Read is under way after one returned because ctx ended, the source
// refuses requests with 503: the pipeline is not reading it.
func (s *httpSource) Read(ctx context.Context) (*stages.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, stages.ErrSourceClosed
	}
	s.reading = true
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		s.pause(err)
		return nil, err
	}
	if s.cur == nil {
		select {
		case s.cur = <-s.ch:
		case <-ctx.Done():
			s.pause(ctx.Err())
			return nil, ctx.Err()
		case <-s.closing:
			return nil, stages.ErrSourceClosed
		case <-s.served:
			if s.isClosing() {
				return nil, stages.ErrSourceClosed
			}
			return nil, fmt.Errorf("http: serve: %w", s.serveErr)
		}
	}
	m := s.cur.msgs[s.cur.next]
	s.cur.next++
	if s.cur.next == len(s.cur.msgs) {
		s.cur = nil
	}
	return m, nil
}

// pause stops taking requests until the next Read, and answers 503 to
// those taken whose records were not read.
func (s *httpSource) pause(cause error) {
	err := fmt.Errorf("%w: %w", errHTTPStopping, cause)
	if s.cur != nil {
		s.cur.abandon(err)
		s.cur = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reading = false
	s.drainLocked(err)
}

// drainLocked fails the requests in the queue; s.mu is held.
func (s *httpSource) drainLocked(err error) {
	for {
		select {
		case in := <-s.ch:
			in.abandon(err)
		default:
			return
		}
	}
}

// take queues a request's records for Read. It fails when the pipeline does
// not read the source or the queue is full.
func (s *httpSource) take(in *ingest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.reading {
		return errHTTPStopping
	}
	select {
	case s.ch <- in:
		return nil
	default:
		return errors.New("too many requests are waiting")
	}
}

func (s *httpSource) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reading && !s.closed
}

// ServeHTTP answers the record path and the health path. Every request
// has read_timeout to send its body, whether it is read or discarded.
func (s *httpSource) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.readTimeout)); err != nil {
		s.log.Debug("http source: cannot set the read deadline", "err", err)
	}
	switch {
	case r.URL.Path == s.path:
		s.serveRecords(w, r)
	case s.health != "" && r.URL.Path == s.health:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpAnswer(w, http.StatusMethodNotAllowed, "method not allowed: use GET")
			return
		}
		if !s.ready() {
			w.Header().Set("Retry-After", httpRetryAfter)
			httpAnswer(w, http.StatusServiceUnavailable, "not ready: the pipeline is not reading records")
			return
		}
		httpReply(w, http.StatusOK, map[string]any{"status": "ok"})
	default:
		refuseUnread(w, http.StatusNotFound, "not found")
	}
}

func (s *httpSource) serveRecords(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuseUnread(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}
	if !s.token.Allows(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		refuseUnread(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	key := r.Header.Get(idempotencyKeyHeader)
	if _, given := r.Header[idempotencyKeyHeader]; given && !validIdempotencyKey(key) {
		refuseUnread(w, http.StatusBadRequest, fmt.Sprintf("%s must be 1 to %d visible ASCII characters", idempotencyKeyHeader, httpMaxIdempotencyKey))
		return
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		w.Header().Set("Retry-After", httpRetryAfter)
		refuseUnread(w, http.StatusServiceUnavailable, fmt.Sprintf("too many requests at once (max_concurrent %d): retry", cap(s.slots)))
		return
	}
	if r.ContentLength > s.maxBody {
		refuseUnread(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is over max_body (%d bytes)", r.ContentLength, s.maxBody))
		return
	}
	body, reserved, err := s.readBody(w, r)
	defer s.buffered.give(reserved)
	if err != nil {
		var tooLarge *http.MaxBytesError
		var timeout net.Error
		switch {
		case errors.Is(err, errHTTPBuffered):
			w.Header().Set("Retry-After", httpRetryAfter)
			refuseUnread(w, http.StatusServiceUnavailable, fmt.Sprintf("%v (max_buffered %d bytes): retry", err, s.buffered.max))
		case errors.As(err, &tooLarge):
			refuseUnread(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over max_body (%d bytes)", s.maxBody))
		case errors.As(err, &timeout) && timeout.Timeout():
			refuseUnread(w, http.StatusRequestTimeout, fmt.Sprintf("body not received within read_timeout (%s)", s.readTimeout))
		default:
			refuseUnread(w, http.StatusBadRequest, "reading the body: "+err.Error())
		}
		return
	}
	// The body is in: lift its deadline, so that waiting for JetStream
	// does not cut the connection.
	if err := http.NewResponseController(w).SetReadDeadline(time.Time{}); err != nil {
		s.log.Debug("http source: cannot lift the read deadline", "err", err)
	}
	msgs, err := splitBody(s.format, body)
	if err != nil {
		httpAnswer(w, http.StatusBadRequest, err.Error())
		return
	}
	if key != "" {
		for i, m := range msgs {
			id := key
			if s.format != formatJSON {
				id += "/" + strconv.Itoa(i)
			}
			m.Header = stages.Header{stages.HeaderMsgID: []string{id}}
		}
	}
	keepTraceContext(r.Header, msgs)
	in := newIngest(msgs)
	if err := s.take(in); err != nil {
		w.Header().Set("Retry-After", httpRetryAfter)
		httpAnswer(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	timer := time.NewTimer(s.ackTimeout)
	defer timer.Stop()
	select {
	case <-in.done:
	case <-s.closing:
	case <-timer.C:
	case <-r.Context().Done():
		return // the client is gone; the records go on
	}
	select {
	case <-in.done: // an outcome that came with the stop or the timeout counts
	default:
		w.Header().Set("Retry-After", httpRetryAfter)
		if s.isClosing() {
			httpAnswer(w, http.StatusServiceUnavailable, "the pipeline is stopping; records may not be stored: retry")
		} else {
			httpAnswer(w, http.StatusServiceUnavailable, "JetStream did not confirm within ack_timeout; records may yet be stored: retry")
		}
		return
	}
	in.mu.Lock()
	accepted, refused, refusal, failure := in.accepted, in.refused, in.refusal, in.failure
	in.mu.Unlock()
	switch {
	case failure != nil:
		w.Header().Set("Retry-After", httpRetryAfter)
		httpReply(w, http.StatusServiceUnavailable, map[string]any{"error": "records not stored: " + failure.Error() + ": retry", "accepted": accepted})
	case refusal != nil:
		httpReply(w, http.StatusUnprocessableEntity, map[string]any{"error": refusal.Error(), "accepted": accepted, "refused": refused})
	default:
		httpReply(w, http.StatusAccepted, map[string]any{"accepted": accepted})
	}
}

func (s *httpSource) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// errHTTPBuffered refuses a body that would take the bodies held in memory
// over max_buffered.
var errHTTPBuffered = errors.New("too many body bytes held at once")

// readBody reads r's body, up to max_body, reserving its bytes of
// s.buffered first: a body with a Content-Length all at once, a chunked
// one as it grows. It returns what it reserved, to be given back once the
// body is no longer held, even with an error.
func (s *httpSource) readBody(w http.ResponseWriter, r *http.Request) (body []byte, reserved int64, err error) {
	size := int64(httpBodyChunk)
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1 // room to see the end without growing
	}
	size = min(size, s.maxBody+1)
	if !s.buffered.take(size) {
		return nil, 0, errHTTPBuffered
	}
	reserved = size
	buf := make([]byte, 0, size)
	rd := http.MaxBytesReader(w, r.Body, s.maxBody)
	for {
		if len(buf) == cap(buf) {
			grow := min(int64(cap(buf)), s.maxBody+1-int64(cap(buf)))
			if grow <= 0 { // cannot happen: MaxBytesReader stops at max_body
				return nil, reserved, fmt.Errorf("body is over max_body (%d bytes)", s.maxBody)
			}
			if !s.buffered.take(grow) {
				return nil, reserved, errHTTPBuffered
			}
			reserved += grow
			buf = slices.Grow(buf, int(grow))
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, reserved, nil
		}
		if err != nil {
			return nil, reserved, err
		}
	}
}

// byteBudget counts bytes held against a maximum; it is safe for
// concurrent use.
type byteBudget struct {
	mu   sync.Mutex
	used int64
	max  int64
}

// take reserves n bytes if that keeps the total within the maximum.
func (b *byteBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

// give returns n bytes taken.
func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// inUse returns the bytes taken now.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// refuseUnread answers a request whose body was not (wholly) read and
// closes its connection afterwards instead of reading the rest, which a
// slow client could make long.
func refuseUnread(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Connection", "close")
	httpAnswer(w, status, msg)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// validIdempotencyKey reports whether k is 1 to httpMaxIdempotencyKey
// visible ASCII characters.
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > httpMaxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// splitBody returns the records of a request body in format. A JSON
// record that is not valid JSON fails the whole body, naming its line.
func splitBody(format string, body []byte) ([]*stages.Message, error) {
	if format == formatJSON {
		if err := validJSON(body); err != nil {
			return nil, fmt.Errorf("body is not a JSON record: %w", err)
		}
		return []*stages.Message{stages.NewMessage(body)}, nil
	}
	var msgs []*stages.Message
	rest := body
	for line := 1; len(rest) > 0; line++ {
		var l []byte
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i], rest[i+1:]
		} else {
			l, rest = rest, nil
		}
		l = bytes.TrimSuffix(l, []byte{'\r'})
		if format == records.JSONL {
			if records.IsBlank(l) {
				continue
			}
			if err := validJSON(l); err != nil {
				return nil, fmt.Errorf("line %d is not a JSON record: %w", line, err)
			}
		}
		msgs = append(msgs, stages.NewMessage(l))
	}
	if len(msgs) == 0 {
		return nil, errors.New("body holds no record")
	}
	return msgs, nil
}

// validJSON checks b with [stages.DecodeJSON], the decoder and limits of
// the pipeline's stages, so that what is taken is not refused downstream.
func validJSON(b []byte) error {
	_, err := stages.DecodeJSON(b)
	return err
}

// httpAnswer writes an error answer {"error": msg}.
func httpAnswer(w http.ResponseWriter, status int, msg string) {
	httpReply(w, status, map[string]any{"error": msg})
}

func httpReply(w http.ResponseWriter, status int, body map[string]any) {
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Close refuses new requests, answers 503 to those still waiting, and shuts
// the server down, waiting for its handlers up to ctx's deadline (5s
// without one) before it closes the connections left.
func (s *httpSource) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed, s.reading = true, false
		s.drainLocked(fmt.Errorf("%w: the source is closed", errHTTPStopping))
		s.mu.Unlock()
		close(s.closing)
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, httpShutdownTimeout)
			defer cancel()
		}
		if err := s.srv.Shutdown(ctx); err != nil {
			s.log.Warn("http source: requests still running at shutdown are cut off", "err", err)
			if err := s.srv.Close(); err != nil {
				s.closeErr = fmt.Errorf("http: close: %w", err)
			}
		}
		<-s.served
	})
	return s.closeErr
}
