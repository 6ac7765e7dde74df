package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/stages"
)

const defaultNATSBuffer = 10000

func natsSourceSpec() stages.Spec {
	return stages.Spec{
		Name:    "nats",
		Summary: "Read records from a NATS subject (core NATS, at-most-once unless requests)",
		Doc: `Subscribes to subject (wildcards allowed) in a queue group and yields ` +
			`each message's payload, as it is, as a record. Every process that runs ` +
			`the source joins the same group (by default sluice.PIPELINE.STAGE), so ` +
			`each message goes to one of them.

Delivery: core NATS stores nothing, so what is published while no ` +
			`source is subscribed, what a slow source drops and what is buffered ` +
			`when it stops is lost: at-most-once. A message published as a request ` +
			`(with a reply subject) is answered only once the record is stored in ` +
			`the pipeline, so a publisher that retries a request until it gets a ` +
			`successful answer has at-least-once delivery (with a Nats-Msg-Id ` +
			`header on the request, its retries are stored once within the ` +
			`pipeline's dedup_window). The answer is {"ok":true} once the record ` +
			`is stored; otherwise it is {"ok":false,"error":"REASON"} with the ` +
			`headers Nats-Service-Error (REASON) and Nats-Service-Error-Code (as ` +
			`the NATS services framework does): 400 when the record was ` +
			`dead-lettered (sending it again will not help), 503 when it was not ` +
			`stored because the run stopped or the source closed (send it again). ` +
			`Requests still buffered when the source closes are answered 503; ` +
			`other buffered messages are lost.

Backpressure and slow consumers: received messages wait in the ` +
			`subscription's buffer, of at most buffer messages (and 64 MiB), until ` +
			`the pipeline reads them; the pipeline reads as fast as its first stream ` +
			`stores. When the buffer is full, NATS cannot slow the publishers ` +
			`down: further messages are dropped (requests among them get no ` +
			`answer, and their publishers time out and retry) and the source logs ` +
			`a warning with the count dropped so far. The connection stays up.

Headers: the message's headers become the record's, except the Nats-* ` +
			`ones (they would steer the pipeline's own JetStream publish) and the ` +
			`Sluice-* ones that the runner sets; Nats-Msg-Id is kept as the ` +
			`record's identity, Sluice-Key and Sluice-Event-Time pass. ` +
			`Sluice-Source-Subject is set to the subject the message was published ` +
			`on.

` + natsConnDoc + ` On the pipeline's own connection a subject that ` +
			`overlaps sluice.> is refused: the source would read the pipeline's ` +
			`own messages.

Example:

    - name: orders
      source: nats
      with:
        subject: orders.*.created
        url: nats://edge.example.com:4222
        creds: /etc/sluice/edge.creds`,
		Params: append([]stages.Param{
			{Name: "subject", Type: stages.TypeString, Required: true, Doc: "Subject to subscribe to; wildcards * and > are allowed."},
			{Name: "queue", Type: stages.TypeString, Doc: "Queue group; default sluice.PIPELINE.STAGE, shared by every process that runs the stage. An empty string subscribes without a group: every process then receives every message."},
			{Name: "buffer", Type: stages.TypeInt, Default: defaultNATSBuffer, Doc: "Messages received and not yet read that the subscription holds; beyond, messages are dropped (slow consumer)."},
		}, natsConnParams...),
		Check:     checkNATSSource,
		NewSource: newNATSSource,
	}
}

// natsBufferBytes bounds the bytes a nats source's subscription holds.
const natsBufferBytes = 64 << 20

// natsCloseWait bounds how long Close answers the requests left in the
// buffer.
const natsCloseWait = 5 * time.Second

func checkNATSSource(p stages.Params) error {
	if err := checkSubject(p.String("subject"), true); err != nil {
		return stages.ParamErrorf("subject", "%v", err)
	}
	if !p.Has("url") && subjectsOverlap(p.String("subject"), "sluice.>") {
		return stages.ParamErrorf("subject", "overlaps sluice.>, the subjects of the pipeline's own streams: on the pipeline's connection the source would read its own output (give url to read another server)")
	}
	if q := p.String("queue"); strings.ContainsAny(q, " \t\r\n") {
		return stages.ParamErrorf("queue", "must not contain white space")
	}
	if n := p.Int("buffer"); n < 1 {
		return stages.ParamErrorf("buffer", "must be >= 1 (got %d)", n)
	}
	return checkNATSConn(p)
}

// natsSource reads a synchronous queue subscription: its buffer is the
// subscription's pending messages, which NextMsg takes one at a time.
type natsSource struct {
	conn    natsConn
	sub     *nats.Subscription
	subject string
	log     *slog.Logger

	mu      sync.Mutex
	dropped int // messages the subscription dropped, as last logged

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ stages.Source = (*natsSource)(nil)

func newNATSSource(p stages.Params, info stages.Info) (stages.Source, error) {
	if err := checkNATSSource(p); err != nil {
		return nil, err
	}
	log := stageLogger(info)
	conn, err := openNATSConn(p, info, log)
	if err != nil {
		return nil, err
	}
	subject := p.String("subject")
	queue := defaultQueue(info)
	if p.Has("queue") {
		queue = p.String("queue")
	}
	buffer := p.Int("buffer")
	if buffer < 1 {
		buffer = defaultNATSBuffer
	}
	// A synchronous subscription starts no goroutine: messages wait in
	// its buffer until Read takes them.
	sub, err := conn.nc.QueueSubscribeSync(subject, queue)
	if err == nil {
		err = sub.SetPendingLimits(buffer, natsBufferBytes)
	}
	if err == nil {
		// The server has the subscription before the run starts.
		err = conn.nc.FlushTimeout(10 * time.Second)
	}
	if err != nil {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		conn.close()
		return nil, fmt.Errorf("subscribe to %s: %w", subject, err)
	}
	return &natsSource{conn: conn, sub: sub, subject: subject, log: log}, nil
}

// defaultQueue is the queue group of a nats source without queue:
// sluice.PIPELINE.STAGE, the same in every process that runs the stage.
func defaultQueue(info stages.Info) string {
	q := "sluice"
	for _, part := range []string{info.Pipeline, info.Stage} {
		if part != "" {
			q += "." + part
		}
	}
	return q
}

func (s *natsSource) Read(ctx context.Context) (*stages.Message, error) {
	for {
		if s.closed.Load() {
			return nil, stages.ErrSourceClosed
		}
		msg, err := s.sub.NextMsgWithContext(ctx)
		switch {
		case err == nil:
			return s.message(msg), nil
		case errors.Is(err, nats.ErrSlowConsumer):
			s.logDropped()
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case s.closed.Load():
			return nil, stages.ErrSourceClosed
		default:
			return nil, fmt.Errorf("subscription to %s: %w", s.subject, err)
		}
	}
}

// logDropped logs how many messages the subscription dropped because its
// buffer was full.
func (s *natsSource) logDropped() {
	n, err := s.sub.Dropped()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || n <= s.dropped {
		return
	}
	s.log.Warn("slow consumer: the subscription's buffer was full and messages were dropped", "subject", s.subject, "dropped", n-s.dropped, "dropped_total", n)
	s.dropped = n
}

// message turns a NATS message into a record; a request is answered when
// the runner reports the record's fate.
func (s *natsSource) message(msg *nats.Msg) *stages.Message {
	m := stages.NewMessage(msg.Data)
	m.Header = inboundHeaders(msg.Header, true)
	m.Header[HeaderSourceSubject] = []string{msg.Subject}
	if reply := msg.Reply; reply != "" {
		m.OnAck(func(err error) { s.answer(reply, err) })
	}
	return m
}

// replyOK is the answer to a request whose record is stored.
var replyOK = []byte(`{"ok":true}`)

// Headers of an answer that reports an error, as the NATS services
// framework (micro) sets them.
const (
	headerServiceError     = "Nats-Service-Error"
	headerServiceErrorCode = "Nats-Service-Error-Code"
)

// errSourceClosing is the answer to requests still buffered at Close.
var errSourceClosing = errors.New("the source is closing: not stored")

// answer replies to a request: {"ok":true}, or the reason the record was
// not stored.
func (s *natsSource) answer(reply string, err error) {
	r := &nats.Msg{Subject: reply, Data: replyOK}
	if err != nil {
		reason := oneLineReason(err.Error())
		code := "503"
		if errors.Is(err, stages.ErrDeadLettered) {
			code = "400"
		}
		r.Data, _ = json.Marshal(struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}{false, reason})
		r.Header = nats.Header{headerServiceError: {reason}, headerServiceErrorCode: {code}}
	}
	if err := s.conn.nc.PublishMsg(r); err != nil {
		s.log.Warn("request not answered", "subject", s.subject, "err", err)
	}
}

// oneLineReason makes an error fit in a header: one line, bounded.
func oneLineReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = s[:1024] + "..."
	}
	return s
}

// Close stops the subscription. Requests left in its buffer are answered
// 503 so that their publishers retry at once; other messages left there
// are lost, as core NATS loses them (the count is logged).
func (s *natsSource) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.logDropped()
		lost := 0
		if err := s.sub.Drain(); err == nil {
			dctx, cancel := withDefaultTimeout(ctx, natsCloseWait)
			for {
				msg, err := s.sub.NextMsgWithContext(dctx)
				if errors.Is(err, nats.ErrSlowConsumer) {
					continue
				}
				if err != nil {
					break
				}
				if msg.Reply != "" {
					s.answer(msg.Reply, errSourceClosing)
				} else {
					lost++
				}
			}
			cancel()
		}
		_ = s.sub.Unsubscribe() // if the drain did not finish
		if lost > 0 {
			s.log.Warn("messages received but not read are lost at close (core NATS is at-most-once)", "subject", s.subject, "lost", lost)
		}
		s.conn.close()
	})
	return nil
}
