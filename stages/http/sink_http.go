package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/stages"
)

// Defaults of the http sink.
const (
	httpSinkDefaultTimeout    = 10 * time.Second
	httpSinkDefaultRetries    = 3
	httpSinkDefaultBackoffMin = 100 * time.Millisecond
	httpSinkDefaultBackoffMax = 5 * time.Second
	httpSinkDefaultMaxBatch   = 500
	// httpSnippetLen is how much of an error answer's body an error quotes.
	httpSnippetLen = 200
	// httpDrainLen is how much of an answer's body is read, to reuse the
	// connection, before it is closed.
	httpDrainLen = 64 << 10
	// httpMaxRedirects bounds the 307 and 308 redirects followed.
	httpMaxRedirects = 5
)

func httpSinkSpec() stages.Spec {
	return stages.Spec{
		Name:    "http",
		Summary: "Send records to an HTTP endpoint, one request per record or a JSON array per batch",
		Doc: `Sends each record as the body of a request to url (method POST by ` +
			`default, Content-Type application/json unless headers set it), or ` +
			`with batch a JSON array of up to max_batch records per request. Each ` +
			`request carries an Idempotency-Key header so that the receiver can ` +
			`drop what it has seen: the record's message ID, which stays the same ` +
			`when a record is delivered again; in batch mode a hash of the IDs of ` +
			`the batch's records (the same for a retry of the same batch).

An answer 2xx is success. A network error (connection refused or reset, ` +
			`DNS, TLS handshake), a timeout, 408, 429 and any 5xx mean the endpoint ` +
			`is down or overloaded: the request is tried again, up to retries more ` +
			`times, after a wait growing from backoff_min to backoff_max (with ` +
			`jitter); a Retry-After header of 429 or 503 sets the wait instead, and ` +
			`one longer than backoff_max ends the retries at once. When the retries ` +
			`are spent the sink reports an outage, not a bad record: the pipeline ` +
			`holds the stage, keeping its records and taking no new ones, and ` +
			`tries again with a capped backoff until the endpoint is back (or the ` +
			`stage's max_outage has passed, which fails the run and leaves the ` +
			`records for the next run); such failures count toward neither ` +
			`max_deliver nor the dead-letter stream. The records of the batch not ` +
			`sent yet wait with it, untried. Any other 4xx ` +
			`answer (and a redirect other than 307/308) is permanent: the record ` +
			`goes to the dead-letter stream at once with the status and the start ` +
			`of the answer's body as its error; in batch mode, every record of ` +
			`the refused request does. A record that is not valid JSON cannot go ` +
			`into a batch's array and is dead-lettered; without batch, payloads ` +
			`are sent as they are.

Delivery is at-least-once: a record whose answer was lost is sent again, ` +
			`with the same Idempotency-Key. Records of a batch are sent in order ` +
			`with concurrency 1; with more, up to that many requests of a batch ` +
			`are in flight at once. Closing the sink cancels requests in flight ` +
			`and retries waiting; their records are delivered again by a later ` +
			`run. Header values come from the pipeline file, where ${VAR} takes ` +
			`secrets from the environment; they are never logged.

For https:// URLs the sink speaks TLS 1.2 or later and trusts the ` +
			`system's certificate authorities, or with tls_ca those of that file ` +
			`instead (a private CA). With tls_cert and tls_key it presents that ` +
			`client certificate when the server asks for one (mutual TLS, as an ` +
			`http source with tls_client_ca does). The files are read once, when ` +
			`the stage starts; a missing or unreadable file, or a key that does ` +
			`not match the certificate, stops it with an error naming the ` +
			`parameter.

Example:

    - name: post
      sink: http
      with:
        url: https://example.com/ingest
        headers:
          Authorization: Bearer ${API_TOKEN}
        batch: true
        max_batch: 100

Example, to an http source over mutual TLS:

    - name: forward
      sink: http
      with:
        url: https://ingest.internal:8443/events
        headers:
          Authorization: Bearer ${INGEST_TOKEN}
        tls_ca: /etc/sluice/tls/ca.pem
        tls_cert: /etc/sluice/tls/client.pem
        tls_key: /etc/sluice/tls/client-key.pem`,
		Params: []stages.Param{
			{Name: "url", Type: stages.TypeString, Required: true, Doc: "The http:// or https:// URL to send records to."},
			{Name: "method", Type: stages.TypeString, Default: http.MethodPost, Enum: []string{http.MethodPost, http.MethodPut, http.MethodPatch}, Doc: "The request method."},
			{Name: "headers", Type: stages.TypeStringMap, Doc: "Headers added to every request, such as Authorization; values may use ${VAR}."},
			{Name: "batch", Type: stages.TypeBool, Default: false, Doc: "Send a JSON array of records per request instead of one request per record."},
			{Name: "max_batch", Type: stages.TypeInt, Doc: "With batch, the most records in one request (default 500)."},
			{Name: "timeout", Type: stages.TypeDuration, Default: httpSinkDefaultTimeout, Doc: "How long one attempt of a request may take."},
			{Name: "retries", Type: stages.TypeInt, Default: httpSinkDefaultRetries, Doc: "How many times a failed request is tried again before the sink reports the endpoint down, and the pipeline holds the stage."},
			{Name: "backoff_min", Type: stages.TypeDuration, Default: httpSinkDefaultBackoffMin, Doc: "The wait before the first retry; it doubles with each retry."},
			{Name: "backoff_max", Type: stages.TypeDuration, Default: httpSinkDefaultBackoffMax, Doc: "The longest wait between retries, and the longest Retry-After honoured."},
			{Name: "concurrency", Type: stages.TypeInt, Default: 1, Doc: "How many requests of one batch of the pipeline may be in flight at once; 1 sends them in order."},
			{Name: paramTLSCA, Type: stages.TypeString, Doc: "A PEM file of CA certificates to trust for the server's certificate instead of the system's; https:// URLs only."},
			{Name: paramTLSCert, Type: stages.TypeString, Doc: "A PEM file holding a client certificate to present when the server asks for one (mutual TLS); with tls_key, https:// URLs only."},
			{Name: paramTLSKey, Type: stages.TypeString, Doc: "A PEM file holding the private key of tls_cert; required with it."},
		},
		Check:   checkHTTPSink,
		NewSink: newHTTPSink,
	}
}

// httpReservedHeaders are the headers the sink sets itself.
var httpReservedHeaders = []string{"Content-Length", "Host", "Transfer-Encoding", idempotencyKeyHeader}

func checkHTTPSink(p stages.Params) error {
	u, err := parseSinkURL(p.String("url"))
	if err != nil {
		return stages.ParamErrorf("url", "%s", err)
	}
	if err := checkTLSFile(p, paramTLSCA); err != nil {
		return err
	}
	if err := checkTLSPair(p, paramTLSCert, paramTLSKey); err != nil {
		return err
	}
	if u.Scheme != "https" {
		for _, name := range []string{paramTLSCA, paramTLSCert} {
			if p.Has(name) {
				return stages.ParamErrorf(name, "only applies to an https:// URL (url is %s://)", u.Scheme)
			}
		}
	}
	for name, v := range p.StringMap("headers") {
		if !validHeaderName(name) {
			return stages.ParamErrorf("headers", "%q is not a valid header name", name)
		}
		for _, r := range httpReservedHeaders {
			if strings.EqualFold(name, r) {
				return stages.ParamErrorf("headers", "%s is set by the sink", r)
			}
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return stages.ParamErrorf("headers", "the value of %s must be one line", name)
		}
	}
	if p.Has("max_batch") {
		if !p.Bool("batch") {
			return stages.ParamErrorf("max_batch", "only applies with batch: true")
		}
		if n := p.Int("max_batch"); n < 1 {
			return stages.ParamErrorf("max_batch", "must be >= 1 (got %d)", n)
		}
	}
	if d := p.Duration("timeout"); d <= 0 {
		return stages.ParamErrorf("timeout", "must be > 0 (got %s)", d)
	}
	if n := p.Int("retries"); n < 0 {
		return stages.ParamErrorf("retries", "must be >= 0 (got %d)", n)
	}
	if d := p.Duration("backoff_min"); d <= 0 {
		return stages.ParamErrorf("backoff_min", "must be > 0 (got %s)", d)
	}
	if lo, hi := p.Duration("backoff_min"), p.Duration("backoff_max"); hi < lo {
		return stages.ParamErrorf("backoff_max", "must be >= backoff_min (got %s < %s)", hi, lo)
	}
	if n := p.Int("concurrency"); n < 1 {
		return stages.ParamErrorf("concurrency", "must be >= 1 (got %d)", n)
	}
	return nil
}

// parseSinkURL checks an http or https URL with a host.
func parseSinkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("want an http:// or https:// URL (got scheme %q)", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("the URL has no host")
	}
	return u, nil
}

// validHeaderName reports whether name is an HTTP token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// httpSink sends records over HTTP. Its fields are read-only after
// construction but for the closing state, so Write is safe for concurrent
// use.
type httpSink struct {
	url         string
	where       string // "METHOD scheme://host/path", for errors: no query, no password
	method      string
	headers     http.Header
	batch       bool
	maxBatch    int
	timeout     time.Duration
	retries     int
	backoff     retry.Backoff // between retries, with jitter
	concurrency int

	tr     *http.Transport
	client *http.Client

	mu     sync.Mutex
	closed bool
	active map[*context.CancelCauseFunc]struct{} // the Writes under way
	writes sync.WaitGroup
}

var _ stages.Sink = (*httpSink)(nil)

func newHTTPSink(p stages.Params, _ stages.Info) (stages.Sink, error) {
	if err := checkHTTPSink(p); err != nil {
		return nil, err
	}
	u, _ := parseSinkURL(p.String("url"))
	s := &httpSink{
		url:         u.String(),
		where:       p.String("method") + " " + u.Scheme + "://" + u.Host + u.EscapedPath(),
		method:      p.String("method"),
		headers:     make(http.Header),
		batch:       p.Bool("batch"),
		maxBatch:    httpSinkDefaultMaxBatch,
		timeout:     p.Duration("timeout"),
		retries:     p.Int("retries"),
		backoff:     retry.Backoff{Min: p.Duration("backoff_min"), Max: p.Duration("backoff_max"), Jitter: 0.5},
		concurrency: p.Int("concurrency"),
		active:      make(map[*context.CancelCauseFunc]struct{}),
	}
	if p.Has("max_batch") {
		s.maxBatch = p.Int("max_batch")
	}
	s.headers.Set("Content-Type", "application/json")
	for name, v := range p.StringMap("headers") {
		s.headers.Set(name, v)
	}
	tlsConfig, err := sinkTLSConfig(p)
	if err != nil {
		return nil, err
	}
	s.tr = http.DefaultTransport.(*http.Transport).Clone()
	s.tr.MaxIdleConnsPerHost = 32
	if tlsConfig != nil {
		s.tr.TLSClientConfig = tlsConfig
	}
	s.client = &http.Client{
		Transport: s.tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			// 301, 302 and 303 would turn the request into a GET.
			if c := req.Response.StatusCode; c != http.StatusTemporaryRedirect && c != http.StatusPermanentRedirect {
				return http.ErrUseLastResponse
			}
			if len(via) >= httpMaxRedirects {
				return fmt.Errorf("stopped after %d redirects", len(via))
			}
			return nil
		},
	}
	return s, nil
}

// begin registers a Write: Close cancels its context and waits for it.
func (s *httpSink) begin(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, fmt.Errorf("http: %w", stages.ErrSinkClosed)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	s.active[&cancel] = struct{}{}
	s.writes.Add(1)
	return ctx, func() {
		s.mu.Lock()
		delete(s.active, &cancel)
		s.mu.Unlock()
		cancel(nil)
		s.writes.Done()
	}, nil
}

// Write sends the batch: one request per record, or with batch one per
// max_batch records. Records that failed come back in a *BatchError.
func (s *httpSink) Write(ctx context.Context, batch []*stages.Message) error {
	ctx, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	errs := make([]error, len(batch))
	if s.batch {
		s.writeArrays(ctx, batch, errs)
	} else {
		s.writeRecords(ctx, batch, errs)
	}
	for _, err := range errs {
		if err != nil {
			return &stages.BatchError{Errs: errs}
		}
	}
	return nil
}

// writeRecords sends each record in a request of its own.
func (s *httpSink) writeRecords(ctx context.Context, batch []*stages.Message, errs []error) {
	s.each(ctx, len(batch), func(i int) error {
		m := batch[i]
		body, err := m.Payload()
		if err != nil {
			errs[i] = err
			return nil
		}
		errs[i] = s.send(ctx, body, messageID(m))
		return errs[i]
	}, func(i int, err error) { errs[i] = err })
}

// writeArrays sends the records as JSON arrays of up to maxBatch records.
func (s *httpSink) writeArrays(ctx context.Context, batch []*stages.Message, errs []error) {
	type chunk struct {
		idx  []int // indexes in batch
		body []byte
		key  string
	}
	var chunks []*chunk
	var cur *chunk
	var ids []string
	flush := func() {
		if cur == nil {
			return
		}
		cur.body = append(cur.body, ']')
		if len(ids) == len(cur.idx) {
			sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
			cur.key = "batch-" + hex.EncodeToString(sum[:16])
		}
		chunks = append(chunks, cur)
		cur, ids = nil, ids[:0]
	}
	for i, m := range batch {
		body, err := m.Payload()
		if err == nil {
			if verr := validJSON(body); verr != nil {
				err = stages.Permanent(fmt.Errorf("http: record is not valid JSON, so cannot go into a batch: %w", verr))
			}
		}
		if err != nil {
			errs[i] = err
			continue
		}
		if cur == nil {
			cur = &chunk{body: []byte{'['}}
		} else {
			cur.body = append(cur.body, ',')
		}
		cur.body = append(cur.body, body...)
		cur.idx = append(cur.idx, i)
		if id := messageID(m); id != "" {
			ids = append(ids, id)
		}
		if len(cur.idx) == s.maxBatch {
			flush()
		}
	}
	flush()
	s.each(ctx, len(chunks), func(i int) error {
		c := chunks[i]
		err := s.send(ctx, c.body, c.key)
		for _, j := range c.idx {
			errs[j] = err
		}
		return err
	}, func(i int, err error) {
		for _, j := range chunks[i].idx {
			errs[j] = err
		}
	})
}

// each runs do(0..n-1) on up to s.concurrency goroutines. Once one fails
// with an error that is not permanent (the endpoint is down or
// overloaded), or ctx ends, the items not started are given to skip with
// the reason instead.
func (s *httpSink) each(ctx context.Context, n int, do func(int) error, skip func(int, error)) {
	var next atomic.Int64
	var stop atomic.Pointer[error]
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			if p := stop.Load(); p != nil {
				skip(i, *p)
				continue
			}
			if err := ctx.Err(); err != nil {
				skip(i, fmt.Errorf("http: not sent: %w", context.Cause(ctx)))
				continue
			}
			if err := do(i); err != nil && !stages.IsPermanent(err) {
				reason := fmt.Errorf("http: not sent after an earlier request of the batch failed: %w", err)
				stop.CompareAndSwap(nil, &reason)
			}
		}
	}
	workers := min(s.concurrency, n)
	if workers <= 1 {
		work()
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(work)
	}
	wg.Wait()
}

// messageID returns the message's Nats-Msg-Id, or "".
func messageID(m *stages.Message) string {
	if ids := m.Header[stages.HeaderMsgID]; len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// send makes one request with body, retrying as configured. It returns nil
// on a 2xx answer, a permanent error for an answer retrying cannot change
// (the record is refused), an outage (stages.Outage) when the retries
// are spent on an endpoint that is down or overloaded, and a plain error
// when ctx ended.
func (s *httpSink) send(ctx context.Context, body []byte, key string) error {
	for attempt := 0; ; attempt++ {
		wait, err := s.attempt(ctx, body, key)
		if err == nil || stages.IsPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("http: %s: %w", s.where, context.Cause(ctx))
		}
		if attempt >= s.retries {
			return fmt.Errorf("%w (after %d attempts)", err, attempt+1)
		}
		if wait > s.backoff.Max {
			return fmt.Errorf("%w: Retry-After %s is longer than backoff_max %s", err, wait, s.backoff.Max)
		}
		if wait <= 0 {
			// backoff_min doubled attempt times, at most backoff_max,
			// less up to half at random.
			wait = s.backoff.Delay(attempt)
		}
		if !retry.Sleep(ctx, wait) {
			return fmt.Errorf("%w; not retried: %w", err, context.Cause(ctx))
		}
	}
}

// attempt makes one request. It returns the error to report, and for a
// 429 or 503 answer with Retry-After how long the server asks to wait.
// No connection, no answer within the timeout, 408, 429 and 5xx are
// outages of the endpoint; any other answer but 2xx is permanent.
func (s *httpSink) attempt(ctx context.Context, body []byte, key string) (time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, s.method, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, stages.Permanent(fmt.Errorf("http: %s: %w", s.where, err))
	}
	req.Header = s.headers.Clone()
	if key != "" {
		req.Header.Set(idempotencyKeyHeader, key)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text holds the whole URL, query included
		}
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return 0, stages.Outage(fmt.Errorf("http: %s: no answer within timeout %s", s.where, s.timeout))
		}
		// No connection (refused, reset, DNS, TLS handshake) or no answer:
		// the endpoint is down, whatever the record. When ctx ended, send
		// reports that instead.
		return 0, stages.Outage(fmt.Errorf("http: %s: %w", s.where, err))
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, httpDrainLen))
		resp.Body.Close()
	}()
	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return 0, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, httpSnippetLen))
	err = fmt.Errorf("http: %s: answer %s", s.where, resp.Status)
	if text := oneLineText(snippet); text != "" {
		err = fmt.Errorf("%w: %s", err, text)
	}
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return retryAfter(resp.Header.Get("Retry-After")), stages.Outage(err)
	case code == http.StatusRequestTimeout || code >= 500:
		return 0, stages.Outage(err)
	case code >= 300 && code <= 399:
		return 0, stages.Permanent(fmt.Errorf("%w (redirect not followed)", err))
	}
	return 0, stages.Permanent(err)
}

// retryAfter parses a Retry-After value, seconds or an HTTP date; 0 when
// absent or unreadable.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 1<<31)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// oneLineText makes the start of an answer's body fit in an error message:
// valid UTF-8, one line, no control characters.
func oneLineText(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\ufffd")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(b) == httpSnippetLen {
		s += "..."
	}
	return s
}

// Close cancels the requests in flight and the retries waiting, waits for
// the Writes under way to return (up to ctx's end) and closes idle
// connections. Write after Close fails.
func (s *httpSink) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for cancel := range s.active {
		(*cancel)(fmt.Errorf("http: %w", stages.ErrSinkClosed))
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.writes.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("http: close: writes still under way: %w", ctx.Err())
	}
	s.tr.CloseIdleConnections()
	return err
}
