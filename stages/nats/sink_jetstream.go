package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
)

func jetstreamSinkSpec() stages.Spec {
	return stages.Spec{
		Name:    "jetstream",
		Summary: "Publish records to a JetStream stream outside the pipeline",
		Doc: `Publishes each record's payload, as it is, to the existing stream ` +
			`stream, on subject: by default the stream's subject, when it has ` +
			`exactly one without wildcards. The subject may take a field of the ` +
			`record: ` + subjectTemplateDoc + `. The sink fails at start if the ` +
			`stream does not exist, is a mirror or is sealed, or if a subject ` +
			`without placeholders is not one of the stream's.

Delivery is at-least-once, effectively once: a batch is published ` +
			`asynchronously and acknowledged once the stream stored every record. ` +
			`Each record is published with its Nats-Msg-Id, derived by the ` +
			`pipeline from where it came from, so a batch retried after a failure ` +
			`or a crash is stored once, within the target stream's duplicate ` +
			`window (2 minutes by default). The record's headers go with it, ` +
			`except the Nats-* ones other than Nats-Msg-Id, which would make the ` +
			`stream check or change what it stores.

Errors: a record the stream refuses (larger than its max_msg_size or ` +
			`the server's max_payload, a subject no stream takes, any other error ` +
			`the server answers for that record) is dead-lettered at once, alone. ` +
			`A connection that is closed or lost, a publish not acknowledged ` +
			`within 10 seconds (or before the write's deadline), a stream that ` +
			`is full (with discard: new), out of resources or without a leader, ` +
			`JetStream not enabled, and no answer on a subject of the stream ` +
			`(as the stream had them when the sink opened: it was deleted or ` +
			`is unavailable) are an outage: the whole batch fails, and the ` +
			`runner holds the stage, keeping it and trying again until the ` +
			`stream is back, and dead-letters none of it.

` + natsConnDoc + `

Example:

    - name: archive
      sink: jetstream
      with:
        stream: ORDERS_CLEAN
        subject: orders.clean.{region}`,
		Params: append([]stages.Param{
			{Name: "stream", Type: stages.TypeString, Required: true, Doc: "The stream to publish to; it must exist."},
			{Name: "subject", Type: stages.TypeString, Doc: "Subject to publish on; default the stream's only subject. " + subjectTemplateDoc + "."},
		}, natsConnParams...),
		Check:   checkJetStreamSink,
		NewSink: newJetStreamSink,
	}
}

// jsPublishTimeout is how long a publish waits for its acknowledgement,
// or for room among the publishes in flight.
const jsPublishTimeout = 10 * time.Second

// jsMaxPending is how many publishes of a sink may await their
// acknowledgement at once, across its workers.
const jsMaxPending = 4096

func checkJetStreamSink(p stages.Params) error {
	if err := checkJSName(p.String("stream")); err != nil {
		return stages.ParamErrorf("stream", "%v", err)
	}
	if p.Has("subject") {
		if _, err := parseSubjectTemplate(p.String("subject")); err != nil {
			return stages.ParamErrorf("subject", "%v", err)
		}
	}
	return checkNATSConn(p)
}

// jsSink publishes batches asynchronously to a stream and waits for their
// acknowledgements.
type jsSink struct {
	conn    natsConn
	js      jetstream.JetStream
	stream  string
	subject *subjectTemplate
	// subjects are the stream's, as it had them when the sink opened.
	subjects []string

	mu     sync.RWMutex // held for reading by Write, for writing by Close
	closed bool
}

var _ stages.Sink = (*jsSink)(nil)

func newJetStreamSink(p stages.Params, info stages.Info) (stages.Sink, error) {
	if err := checkJetStreamSink(p); err != nil {
		return nil, err
	}
	conn, err := openNATSConn(p, info, stageLogger(info))
	if err != nil {
		return nil, err
	}
	s := &jsSink{conn: conn, stream: p.String("stream")}
	if err := s.bind(p); err != nil {
		conn.close()
		return nil, err
	}
	return s, nil
}

// bind checks the stream and settles the subject.
func (s *jsSink) bind(p stages.Params) error {
	js, err := jetstream.New(s.conn.nc,
		jetstream.WithPublishAsyncMaxPending(jsMaxPending),
		jetstream.WithPublishAsyncTimeout(jsPublishTimeout))
	if err != nil {
		return err
	}
	s.js = js
	ctx, cancel := context.WithTimeout(context.Background(), jsSetupTimeout)
	defer cancel()
	st, err := js.Stream(ctx, s.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s does not exist", s.stream)
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.stream, err)
	}
	cfg := st.CachedInfo().Config
	s.subjects = cfg.Subjects
	switch {
	case cfg.Mirror != nil:
		return fmt.Errorf("stream %s is a mirror: it takes no publishes", s.stream)
	case cfg.Sealed:
		return fmt.Errorf("stream %s is sealed: it takes no publishes", s.stream)
	}
	if !p.Has("subject") {
		if len(cfg.Subjects) != 1 || checkSubject(cfg.Subjects[0], false) != nil {
			return stages.ParamErrorf("subject", "required: stream %s has subjects [%s], not exactly one without wildcards", s.stream, strings.Join(cfg.Subjects, ", "))
		}
		s.subject = &subjectTemplate{src: cfg.Subjects[0]}
		return nil
	}
	if s.subject, err = parseSubjectTemplate(p.String("subject")); err != nil {
		return stages.ParamErrorf("subject", "%v", err)
	}
	if s.subject.literal() && !streamTakes(cfg.Subjects, s.subject.src) {
		return stages.ParamErrorf("subject", "%s is not a subject of stream %s (its subjects: [%s])", s.subject.src, s.stream, strings.Join(cfg.Subjects, ", "))
	}
	return nil
}

// streamTakes reports whether a stream with those subjects stores what is
// published on subject.
func streamTakes(subjects []string, subject string) bool {
	for _, f := range subjects {
		if subjectMatches(f, subject) {
			return true
		}
	}
	return false
}

// Write publishes the batch asynchronously and waits until the stream
// acknowledged each record, or failed it. Records that failed are
// reported in a *BatchError; ctx ending fails those not yet acknowledged,
// to be retried (their Nats-Msg-Id makes that safe). When any record
// failed with an outage (see [publishError]), Write returns that error
// for the whole batch instead.
func (s *jsSink) Write(ctx context.Context, batch []*stages.Message) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return stages.ErrSinkClosed
	}
	errs := make([]error, len(batch))
	futs := make([]jetstream.PubAckFuture, len(batch))
	subjects := make([]string, len(batch))
	failed := false
	for i, m := range batch {
		subject, err := s.subject.render(m)
		var data []byte
		if err == nil {
			data, err = m.Payload()
		}
		if err == nil {
			futs[i], err = s.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data, Header: outboundHeaders(m.Header)}, jetstream.WithStallWait(jsPublishTimeout))
			if err != nil {
				err = s.publishError(subject, len(data), err)
			}
		}
		subjects[i], errs[i] = subject, err
		failed = failed || err != nil
	}
wait:
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs[i], failed = s.publishError(subjects[i], 0, err), true
		case <-ctx.Done():
			for j := i; j < len(futs); j++ {
				if futs[j] != nil {
					errs[j] = s.publishError(subjects[j], 0, fmt.Errorf("not acknowledged: %w", ctx.Err()))
				}
			}
			failed = true
			break wait
		}
	}
	if err := batchOutage(errs); err != nil {
		return err
	}
	if failed {
		return &stages.BatchError{Errs: errs}
	}
	return nil
}

// publishError explains a publish error of a record of size bytes. It
// marks as an outage those of the connection or of a server that cannot
// store for now, and no answer on a subject of the stream (the stream was
// deleted or is unavailable); as permanent those that publishing the
// record again cannot fix: a refusal by the server for this record, a
// subject the stream does not take, a record too large.
func (s *jsSink) publishError(subject string, size int, err error) error {
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrHeadersNotSupported) {
		return fmt.Errorf("stream %s: %w", s.stream, publishError(s.conn.nc, subject, size, err))
	}
	err = fmt.Errorf("stream %s: publish on %s: %w", s.stream, subject, err)
	switch {
	case connOutage(err):
		return stages.Outage(err)
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		if streamTakes(s.subjects, subject) {
			return stages.Outage(fmt.Errorf("%w (the stream does not answer: deleted or unavailable)", err))
		}
		return stages.Permanent(fmt.Errorf("%w (no stream takes this subject)", err))
	case errors.Is(err, context.Canceled):
		return err
	}
	if api, ok := errors.AsType[*jetstream.APIError](err); ok && api != nil {
		return stages.Permanent(err)
	}
	return err
}

// Close waits for the Writes under way and closes a connection of the
// sink's own. Every Write waited for its acknowledgements: there is
// nothing to flush.
func (s *jsSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.conn.close()
	return nil
}
