package http

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/records"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// httpAnswerOf is what a test client got back.
type httpAnswerOf struct {
	status int
	body   string
	header http.Header
	err    error
}

// httpDo sends a request and reads the whole answer.
func httpDo(client *http.Client, method, url, body string, header map[string]string) httpAnswerOf {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return httpAnswerOf{err: err}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return httpAnswerOf{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpAnswerOf{status: resp.StatusCode, body: string(b), header: resp.Header, err: err}
}

// testHTTPClient returns a client whose connections are closed when the
// test ends.
func testHTTPClient(t *testing.T) *http.Client {
	c := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: time.Minute}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// newHTTPTestSource starts an http source on a free loopback port and
// returns it with its base URL.
func newHTTPTestSource(t *testing.T, raw map[string]any) (*httpSource, string) {
	t.Helper()
	if raw == nil {
		raw = map[string]any{}
	}
	if _, ok := raw["listen"]; !ok {
		raw["listen"] = "127.0.0.1:0"
	}
	src := stagetest.NewSource(t, "http", raw, stages.Info{}).(*httpSource)
	return src, "http://" + src.addr()
}

// readInto calls Read until the test ends, handing each record to got;
// with ack set it acknowledges each record as stored first. It waits until
// the source reports ready.
func readInto(t *testing.T, src *httpSource, base string, ack bool) <-chan *stages.Message {
	t.Helper()
	return readIntoWith(t, src, testHTTPClient(t), base, ack)
}

// readIntoWith is readInto checking readiness with client, for a source
// that serves HTTPS.
func readIntoWith(t *testing.T, src *httpSource, client *http.Client, base string, ack bool) <-chan *stages.Message {
	t.Helper()
	got := make(chan *stages.Message, 100)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for {
			m, err := src.Read(ctx)
			if err != nil {
				return
			}
			if ack {
				m.Ack(nil)
			}
			select {
			case got <- m:
			case <-ctx.Done():
				return
			}
		}
	})
	natstest.WaitFor(t, 10*time.Second, "the source to be ready", func() bool {
		return httpDo(client, http.MethodGet, base+"/healthz", "", nil).status == http.StatusOK
	})
	return got
}

func TestHTTPSourceAnswers(t *testing.T) {
	const token = "s3cret-token"
	big := `{"pad": "` + strings.Repeat("x", 100) + `"}`
	chunkedBig := `"` + strings.Repeat("y", 3*httpBodyChunk) + `"`
	for _, tc := range []struct {
		name       string
		params     map[string]any
		method     string
		path       string
		body       string
		header     map[string]string
		chunked    bool // send without Content-Length
		wantStatus int
		wantInBody string
		want       []string // payloads that enter the pipeline
		wantMsgIDs []string
	}{
		{name: "one JSON record", body: `{"n": 1}`, wantStatus: 202, wantInBody: `"accepted":1`, want: []string{`{"n": 1}`}},
		{name: "GET is not allowed", method: http.MethodGet, wantStatus: 405},
		{name: "PUT is not allowed", method: http.MethodPut, body: `{"n": 1}`, wantStatus: 405},
		{name: "unknown path", path: "/other", body: `{"n": 1}`, wantStatus: 404},
		{name: "missing token", params: map[string]any{"token": token}, body: `{"n": 1}`, wantStatus: 401},
		{name: "wrong token", params: map[string]any{"token": token}, body: `{"n": 1}`, header: map[string]string{"Authorization": "Bearer nope"}, wantStatus: 401},
		{name: "token without Bearer", params: map[string]any{"token": token}, body: `{"n": 1}`, header: map[string]string{"Authorization": token}, wantStatus: 401},
		{name: "right token", params: map[string]any{"token": token}, body: `{"n": 1}`, header: map[string]string{"Authorization": "Bearer " + token}, wantStatus: 202, want: []string{`{"n": 1}`}},
		{name: "body over max_body", params: map[string]any{"max_body": 64}, body: big, wantStatus: 413},
		{name: "chunked body over max_body", params: map[string]any{"max_body": 64}, body: big, chunked: true, wantStatus: 413},
		{name: "chunked body of several chunks", body: chunkedBig, chunked: true, wantStatus: 202, want: []string{chunkedBig}},
		{name: "body at max_body", params: map[string]any{"max_body": len(big)}, body: big, wantStatus: 202, want: []string{big}},
		{name: "bad JSON", body: `{"n": `, wantStatus: 400, wantInBody: "not a JSON record"},
		{name: "nested too deep", body: strings.Repeat("[", 5000) + strings.Repeat("]", 5000), wantStatus: 400, wantInBody: "body is not a JSON record: nesting deeper than 4095 (at byte 4095)"},
		{
			name: "jsonl line nested too deep", params: map[string]any{"format": "jsonl"},
			body: "{}\n" + strings.Repeat(`{"a":`, 9999) + "1" + strings.Repeat("}", 9999) + "\n", wantStatus: 400,
			wantInBody: "line 2 is not a JSON record: nesting deeper than 4095 (at byte 20475)",
		},
		{name: "bad JSON names the byte", body: `{"n": 1,}`, wantStatus: 400, wantInBody: "(at byte 9)"},
		{name: "invalid UTF-8", body: "{\"s\": \"\xff\"}", wantStatus: 400, wantInBody: "UTF-8"},
		{name: "empty body", body: ``, wantStatus: 400},
		{
			name: "jsonl records", params: map[string]any{"format": "jsonl"},
			body: "{\"n\": 1}\n\n{\"n\": 2}\r\n", wantStatus: 202, wantInBody: `"accepted":2`,
			want: []string{`{"n": 1}`, `{"n": 2}`},
		},
		{
			name: "jsonl with a bad line stores nothing", params: map[string]any{"format": "jsonl"},
			body: "{\"n\": 1}\n{\"n\": }\n{\"n\": 3}\n", wantStatus: 400, wantInBody: "line 2",
		},
		{
			name: "lines", params: map[string]any{"format": "lines"},
			body: "a\n\nnot json\n", wantStatus: 202,
			want: []string{"a", "", "not json"},
		},
		{
			name: "idempotency key names the record", body: `{"n": 1}`,
			header: map[string]string{"Idempotency-Key": "order-17"}, wantStatus: 202,
			want: []string{`{"n": 1}`}, wantMsgIDs: []string{"order-17"},
		},
		{
			name: "idempotency key and index name each line", params: map[string]any{"format": "jsonl"},
			body: "{\"n\": 1}\n{\"n\": 2}\n", header: map[string]string{"Idempotency-Key": "batch-9"}, wantStatus: 202,
			want: []string{`{"n": 1}`, `{"n": 2}`}, wantMsgIDs: []string{"batch-9/0", "batch-9/1"},
		},
		{name: "bad idempotency key", body: `{"n": 1}`, header: map[string]string{"Idempotency-Key": "has space"}, wantStatus: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, base := newHTTPTestSource(t, tc.params)
			got := readInto(t, src, base, true)
			client := testHTTPClient(t)
			method := cmpOr(tc.method, http.MethodPost)
			path := cmpOr(tc.path, "/")
			var a httpAnswerOf
			if tc.chunked {
				req, err := http.NewRequest(method, base+path, io.MultiReader(strings.NewReader(tc.body)))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				a = httpAnswerOf{status: resp.StatusCode, body: string(b), header: resp.Header}
			} else {
				a = httpDo(client, method, base+path, tc.body, tc.header)
			}
			if a.err != nil {
				t.Fatal(a.err)
			}
			if a.status != tc.wantStatus || !strings.Contains(a.body, tc.wantInBody) {
				t.Fatalf("answer %d %q, want %d containing %q", a.status, a.body, tc.wantStatus, tc.wantInBody)
			}
			switch a.status {
			case 405:
				if a.header.Get("Allow") != http.MethodPost {
					t.Errorf("Allow: %q", a.header.Get("Allow"))
				}
			case 401:
				if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate: %q", a.header.Get("WWW-Authenticate"))
				}
				if strings.Contains(a.body, token) {
					t.Errorf("the answer shows the token: %q", a.body)
				}
			}
			// A record sent afterwards is the first one read after the
			// request's own: nothing else entered the pipeline.
			sentinel := map[string]string{}
			if _, ok := tc.params["token"]; ok {
				sentinel["Authorization"] = "Bearer " + token
			}
			if s := httpDo(client, http.MethodPost, base+"/", "\"sentinel\"", sentinel); s.status != 202 {
				t.Fatalf("sentinel: %d %q %v", s.status, s.body, s.err)
			}
			var ids []string
			var payloads []string
			for {
				m := <-got
				p := stagetest.PayloadOf(t, m)
				if p == "\"sentinel\"" || p == "sentinel" {
					break
				}
				payloads = append(payloads, p)
				if id := messageID(m); id != "" {
					ids = append(ids, id)
				}
			}
			if !slices.Equal(payloads, tc.want) {
				t.Errorf("records read: %q, want %q", payloads, tc.want)
			}
			if !slices.Equal(ids, tc.wantMsgIDs) {
				t.Errorf("message IDs: %q, want %q", ids, tc.wantMsgIDs)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// The answer waits for the acknowledgement of every record of the request,
// and says what it was.
func TestHTTPSourceAnswersAfterAck(t *testing.T) {
	for _, tc := range []struct {
		name       string
		body       string
		acks       []error
		wantStatus int
		wantInBody string
	}{
		{name: "stored", body: `{"n": 1}`, acks: []error{nil}, wantStatus: 202, wantInBody: `"accepted":1`},
		{name: "three records stored", body: "{\"n\": 1}\n{\"n\": 2}\n{\"n\": 3}\n", acks: []error{nil, nil, nil}, wantStatus: 202, wantInBody: `"accepted":3`},
		{
			name: "one dead-lettered", body: "{\"n\": 1}\n{\"n\": 2}\n",
			acks:       []error{nil, fmt.Errorf("%w: record too large", stages.ErrDeadLettered)},
			wantStatus: 422, wantInBody: `"refused":1`,
		},
		{
			name: "not stored: the run stops", body: `{"n": 1}`,
			acks:       []error{errors.New(`stage "in": not stored: context canceled`)},
			wantStatus: 503, wantInBody: "retry",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, base := newHTTPTestSource(t, map[string]any{"format": "jsonl", "ack_timeout": "1m"})
			got := readInto(t, src, base, false)
			client := testHTTPClient(t)
			answer := make(chan httpAnswerOf, 1)
			go func() { answer <- httpDo(client, http.MethodPost, base+"/", tc.body, nil) }()

			var held []*stages.Message
			for range tc.acks {
				held = append(held, <-got)
			}
			for i, m := range held {
				// Before the last acknowledgement, the request is still
				// waiting, even after another request has gone through
				// the server.
				if a := httpDo(client, http.MethodGet, base+"/healthz", "", nil); a.status != 200 {
					t.Fatalf("healthz: %d %v", a.status, a.err)
				}
				select {
				case a := <-answer:
					t.Fatalf("answered %d %q before record %d was acknowledged", a.status, a.body, i+1)
				default:
				}
				m.Ack(tc.acks[i])
			}
			a := <-answer
			if a.err != nil {
				t.Fatal(a.err)
			}
			if a.status != tc.wantStatus || !strings.Contains(a.body, tc.wantInBody) {
				t.Fatalf("answer %d %q, want %d containing %q", a.status, a.body, tc.wantStatus, tc.wantInBody)
			}
			if a.status == 503 && a.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// A request waits in the queue while the pipeline is behind; one more is
// refused with 503 and Retry-After; closing the source answers the waiting
// one 503.
func TestHTTPSourceQueueFullAndClose(t *testing.T) {
	s := stagetest.Lookup(t, stages.RoleSource, "http")
	raw, err := s.NewSource(stagetest.Parse(t, s, map[string]any{"listen": "127.0.0.1:0", "queue": 1}), stages.Info{})
	if err != nil {
		t.Fatal(err)
	}
	src := raw.(*httpSource)
	base := "http://" + src.addr()
	client := testHTTPClient(t)

	// One Read takes the first request and then the pipeline reads no
	// more: the next request waits in the queue.
	first := make(chan *stages.Message, 1)
	go func() {
		m, err := src.Read(context.Background())
		if err != nil {
			t.Error(err)
		}
		first <- m
	}()
	natstest.WaitFor(t, 10*time.Second, "readiness", func() bool {
		return httpDo(client, http.MethodGet, base+"/healthz", "", nil).status == 200
	})
	answers := make(chan httpAnswerOf, 2)
	go func() { answers <- httpDo(client, http.MethodPost, base+"/", `{"n": 1}`, nil) }()
	<-first
	go func() { answers <- httpDo(client, http.MethodPost, base+"/", `{"n": 2}`, nil) }()
	natstest.WaitFor(t, 10*time.Second, "the second request queued", func() bool { return len(src.ch) == 1 })

	a := httpDo(client, http.MethodPost, base+"/", `{"n": 3}`, nil)
	if a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Fatalf("third request: %d %q Retry-After %q, want 503 with Retry-After", a.status, a.body, a.header.Get("Retry-After"))
	}

	if err := src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if a := <-answers; a.status != 503 || a.header.Get("Retry-After") == "" {
			t.Errorf("waiting request at close: %d %q, want 503 with Retry-After", a.status, a.body)
		}
	}
	if _, err := src.Read(context.Background()); !errors.Is(err, stages.ErrSourceClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	client.CloseIdleConnections()
	if a := httpDo(client, http.MethodGet, base+"/healthz", "", nil); a.err == nil {
		t.Errorf("the server still answers after Close: %d", a.status)
	}
	if err := src.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Until the pipeline reads the source, and once it stopped reading,
// requests are refused with 503, and those queued are answered 503.
func TestHTTPSourceNotReading(t *testing.T) {
	src, base := newHTTPTestSource(t, nil)
	client := testHTTPClient(t)
	for _, path := range []string{"/", "/healthz"} {
		method := http.MethodPost
		if path == "/healthz" {
			method = http.MethodGet
		}
		if a := httpDo(client, method, base+path, `{"n": 1}`, nil); a.status != 503 {
			t.Errorf("%s %s before the first Read: %d %q, want 503", method, path, a.status, a.body)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	read := make(chan error, 1)
	go func() {
		m, err := src.Read(ctx)
		if err == nil {
			m.Ack(nil)
			_, err = src.Read(ctx) // blocks until cancelled
		}
		read <- err
	}()
	natstest.WaitFor(t, 10*time.Second, "readiness", func() bool {
		return httpDo(client, http.MethodGet, base+"/healthz", "", nil).status == 200
	})
	if a := httpDo(client, http.MethodPost, base+"/", `{"n": 1}`, nil); a.status != 202 {
		t.Fatalf("while reading: %d %q", a.status, a.body)
	}
	cancel()
	if err := <-read; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read: %v, want context.Canceled", err)
	}
	if a := httpDo(client, http.MethodPost, base+"/", `{"n": 2}`, nil); a.status != 503 || a.header.Get("Retry-After") == "" {
		t.Errorf("after the pipeline stopped reading: %d %q, want 503 with Retry-After", a.status, a.body)
	}
}

func TestHTTPSourceCheck(t *testing.T) {
	s := stagetest.Lookup(t, stages.RoleSource, "http")
	for _, tc := range []struct {
		raw   map[string]any
		param string
	}{
		{map[string]any{"listen": "8080"}, "listen"},
		{map[string]any{"listen": "127.0.0.1:http"}, "listen"},
		{map[string]any{"listen": "127.0.0.1:70000"}, "listen"},
		{map[string]any{"path": "events"}, "path"},
		{map[string]any{"health_path": "/"}, "health_path"},
		{map[string]any{"health_path": "healthz"}, "health_path"},
		{map[string]any{"max_body": 0}, "max_body"},
		{map[string]any{"queue": 0}, "queue"},
		{map[string]any{"ack_timeout": "0s"}, "ack_timeout"},
		{map[string]any{"max_concurrent": 0}, "max_concurrent"},
		{map[string]any{"max_buffered": 1000, "max_body": 1001}, "max_buffered"},
		{map[string]any{"read_timeout": "0s"}, "read_timeout"},
		{map[string]any{"token": ""}, "token"},
		{map[string]any{"format": "csv"}, "format"},
	} {
		_, errs := s.ParseParams(tc.raw)
		var pe *stages.ParamError
		if len(errs) != 1 || !errors.As(errs[0], &pe) || pe.Param != tc.param || !errors.Is(errs[0], stages.ErrInvalidParam) {
			t.Errorf("%v: got %v, want one error on %s", tc.raw, errs, tc.param)
		}
	}
	if _, errs := s.ParseParams(map[string]any{"health_path": ""}); len(errs) > 0 {
		t.Errorf("health_path \"\" (none): %v", errs)
	}
}

// The default address is loopback, never every interface.
func TestHTTPSourceDefaultListen(t *testing.T) {
	s := stagetest.Lookup(t, stages.RoleSource, "http")
	p := stagetest.Parse(t, s, map[string]any{})
	if got := p.String("listen"); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("default listen %q is not loopback", got)
	}
}

// FuzzHTTPSplitBody: any body is either refused as a whole or becomes
// records, which in the JSON formats are each valid JSON (as far as
// encoding/json goes: the stricter record codec may still refuse one
// downstream, which dead-letters it).
func FuzzHTTPSplitBody(f *testing.F) {
	for _, seed := range []string{"{\"n\": 1}\n{\"n\": 2}\n", "\n\n", "{\"n\": \n", "a\r\nb", "\xff", ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, format := range []string{formatJSON, records.JSONL, records.Lines} {
			ms, err := splitBody(format, body)
			if err != nil {
				if ms != nil {
					t.Fatalf("%s: records with an error", format)
				}
				continue
			}
			if len(ms) == 0 {
				t.Fatalf("%s: no records and no error", format)
			}
			if format == records.Lines {
				continue
			}
			for _, m := range ms {
				if p, _ := m.Payload(); !utf8.Valid(p) || !json.Valid(p) {
					t.Fatalf("%s: record %q is not JSON", format, p)
				}
			}
		}
	})
}

// slowClient opens a connection to addr and sends a POST of a body of
// contentLength bytes (chunked when -1) but only its first sent bytes,
// then stalls. The connection is closed when the test ends.
func slowClient(t *testing.T, addr string, contentLength, sent int) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := "POST / HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
	if contentLength >= 0 {
		head += fmt.Sprintf("Content-Length: %d\r\n\r\n", contentLength)
	} else {
		head += fmt.Sprintf("Transfer-Encoding: chunked\r\n\r\n%x\r\n", sent)
	}
	if _, err := io.WriteString(conn, head+"["+strings.Repeat(" ", sent-1)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// answerOn reads the answer on conn, waiting up to a minute.
func answerOn(t *testing.T, conn net.Conn) httpAnswerOf {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return httpAnswerOf{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpAnswerOf{status: resp.StatusCode, body: string(b), header: resp.Header, err: err}
}

// Slow clients cannot make the source hold more than max_concurrent
// requests or max_buffered bytes of bodies: the request past a limit is
// answered 503 with Retry-After at once; once the slow ones are gone,
// requests go through again.
func TestHTTPSourceLimits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]any
		slow   [][2]int // Content-Length (-1: chunked) and bytes sent of each slow client that is let in
		// refused is the Content-Length of a slow client refused 503;
		// zero for a normal request of a small body.
		refused    int
		wantInBody string
	}{
		{
			name:   "max_concurrent",
			params: map[string]any{"max_concurrent": 2},
			slow:   [][2]int{{1000, 10}, {1000, 10}}, wantInBody: "max_concurrent 2",
		},
		{
			name:   "max_buffered: a second large body",
			params: map[string]any{"max_body": 1000, "max_buffered": 1500},
			slow:   [][2]int{{1000, 10}}, refused: 1000, wantInBody: "max_buffered 1500",
		},
		{
			name:   "max_buffered: a chunked body",
			params: map[string]any{"max_body": 1000, "max_buffered": 1500},
			slow:   [][2]int{{900, 10}}, refused: -1, wantInBody: "max_buffered 1500",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.params["read_timeout"] = "1m" // the slow clients are not cut off during the test
			src, base := newHTTPTestSource(t, tc.params)
			readInto(t, src, base, true)
			client := testHTTPClient(t)
			var slow []net.Conn
			for _, s := range tc.slow {
				slow = append(slow, slowClient(t, src.addr(), s[0], s[1]))
			}
			natstest.WaitFor(t, 10*time.Second, "the slow requests to be handled", func() bool {
				return len(src.slots) == len(tc.slow) && src.buffered.inUse() > 0
			})

			start := time.Now()
			var a httpAnswerOf
			if tc.refused != 0 {
				a = answerOn(t, slowClient(t, src.addr(), tc.refused, 10))
			} else {
				a = httpDo(client, http.MethodPost, base+"/", `{"n": 1}`, nil)
			}
			if a.err != nil {
				t.Fatal(a.err)
			}
			if a.status != 503 || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, tc.wantInBody) {
				t.Fatalf("request past the limit: %d %q Retry-After %q, want 503 with Retry-After naming %q", a.status, a.body, a.header.Get("Retry-After"), tc.wantInBody)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("the refusal took %s", d)
			}
			if tc.refused != 0 { // a small body still fits what is left
				if a := httpDo(client, http.MethodPost, base+"/", `{"n": 2}`, nil); a.status != 202 {
					t.Errorf("a small body beside the slow one: %d %q", a.status, a.body)
				}
			}

			for _, c := range slow {
				c.Close()
			}
			natstest.WaitFor(t, 10*time.Second, "the slow requests to end", func() bool {
				return len(src.slots) == 0 && src.buffered.inUse() == 0
			})
			if a := httpDo(client, http.MethodPost, base+"/", `{"n": 3}`, nil); a.status != 202 {
				t.Errorf("after the slow clients left: %d %q", a.status, a.body)
			}
		})
	}
}

// A request refused before its body is read is answered at once even when
// its body stalls, not after read_timeout.
func TestHTTPSourceRefusesStalledBodiesAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		params     map[string]any
		head       string
		wantStatus int
	}{
		{name: "wrong path", head: "POST /other HTTP/1.1\r\n", wantStatus: 404},
		{name: "wrong method", head: "PUT / HTTP/1.1\r\n", wantStatus: 405},
		{name: "no token", params: map[string]any{"token": "t0ken"}, head: "POST / HTTP/1.1\r\n", wantStatus: 401},
		{name: "over max_body", params: map[string]any{"max_body": 100}, head: "POST / HTTP/1.1\r\n", wantStatus: 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.params == nil {
				tc.params = map[string]any{}
			}
			tc.params["read_timeout"] = "1m"
			src, base := newHTTPTestSource(t, tc.params)
			readInto(t, src, base, true)
			conn, err := net.Dial("tcp", src.addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			if _, err := io.WriteString(conn, tc.head+"Host: test\r\nContent-Length: 1000\r\n\r\n[1,"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			a := answerOn(t, conn)
			if a.err != nil || a.status != tc.wantStatus {
				t.Fatalf("answer %d %q %v, want %d", a.status, a.body, a.err, tc.wantStatus)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("answered after %s", d)
			}
		})
	}
}

// A client slower than read_timeout is answered 408 and cut off, whether
// it stalls in its body or in its headers; what it held is given back.
func TestHTTPSourceReadTimeout(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	src, base := newHTTPTestSource(t, map[string]any{"read_timeout": readTimeout.String(), "max_concurrent": 1})
	readInto(t, src, base, true)
	client := testHTTPClient(t)

	start := time.Now()
	conn := slowClient(t, src.addr(), 1000, 10)
	a := answerOn(t, conn)
	if a.err != nil || a.status != http.StatusRequestTimeout || !strings.Contains(a.body, "read_timeout") {
		t.Fatalf("stalled body: %d %q %v, want 408", a.status, a.body, a.err)
	}
	if d := time.Since(start); d < readTimeout {
		t.Errorf("cut off after %s, before read_timeout", d)
	}
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("the connection is still open after the 408 (read %d bytes)", n)
	}

	// Headers alone that stall: the connection is closed.
	hconn, err := net.Dial("tcp", src.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hconn.Close() })
	if _, err := io.WriteString(hconn, "POST / HTTP/1.1\r\nHost: te"); err != nil {
		t.Fatal(err)
	}
	if err := hconn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(hconn); err != nil {
		t.Errorf("stalled headers: %v, want the connection closed", err)
	}

	natstest.WaitFor(t, 10*time.Second, "the slot and the bytes given back", func() bool {
		return len(src.slots) == 0 && src.buffered.inUse() == 0
	})
	if a := httpDo(client, http.MethodPost, base+"/", `{"n": 1}`, nil); a.status != 202 {
		t.Errorf("after the slow clients: %d %q", a.status, a.body)
	}
}
