package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sluicehq/sluice/stages"
)

func natsSinkSpec() stages.Spec {
	return stages.Spec{
		Name:    "nats",
		Summary: "Publish records to a NATS subject (core NATS, at-most-once)",
		Doc: `Publishes each record's payload, as it is, on subject, which may ` +
			`take the subject from the record: ` + subjectTemplateDoc + `. A ` +
			`record too large for the server's max_payload, or with headers a server ` +
			`that takes none, is dead-lettered too. ` +
			`The record's headers go with it, except the Nats-* ones other than ` +
			`Nats-Msg-Id (a JetStream stream that captures the subject then drops ` +
			`duplicates).

Delivery: a batch is acknowledged once the server has received it ` +
			`(the sink flushes the connection after each batch). Core NATS stores ` +
			`nothing: each subscriber connected at that moment gets the record at ` +
			`most once, and one that is away or too slow misses it. A batch whose ` +
			`flush failed (the connection was lost) is retried, so subscribers may ` +
			`see some of its records twice. A closed or lost connection (past ` +
			`what its reconnect buffer holds), and a flush that fails or times ` +
			`out, are an outage: the runner holds the stage, keeping the batch ` +
			`and trying again until the server is back, and dead-letters none ` +
			`of it. For stored, acknowledged delivery, ` +
			`use the jetstream sink.

` + natsConnDoc + `

Example:

    - name: notify
      sink: nats
      with:
        subject: orders.{region}.big`,
		Params: append([]stages.Param{
			{Name: "subject", Type: stages.TypeString, Required: true, Doc: "Subject to publish on; " + subjectTemplateDoc + "."},
		}, natsConnParams...),
		Check:   checkNATSSink,
		NewSink: newNATSSink,
	}
}

// natsFlushTimeout bounds a flush when Write's context has no deadline.
const natsFlushTimeout = 10 * time.Second

func checkNATSSink(p stages.Params) error {
	if _, err := parseSubjectTemplate(p.String("subject")); err != nil {
		return stages.ParamErrorf("subject", "%v", err)
	}
	return checkNATSConn(p)
}

// natsSink publishes each batch on a connection and flushes it.
type natsSink struct {
	conn    natsConn
	subject *subjectTemplate

	mu     sync.RWMutex // held for reading by Write, for writing by Close
	closed bool
}

var _ stages.Sink = (*natsSink)(nil)

func newNATSSink(p stages.Params, info stages.Info) (stages.Sink, error) {
	if err := checkNATSSink(p); err != nil {
		return nil, err
	}
	subject, err := parseSubjectTemplate(p.String("subject"))
	if err != nil {
		return nil, stages.ParamErrorf("subject", "%v", err)
	}
	conn, err := openNATSConn(p, info, stageLogger(info))
	if err != nil {
		return nil, err
	}
	return &natsSink{conn: conn, subject: subject}, nil
}

// Write publishes every record of the batch, then flushes the connection.
// A record that cannot be published (no subject from it, too large) fails
// permanently, alone, in a *BatchError. A connection that is closed, lost
// for longer than its reconnect buffer lasts, or that fails the flush
// fails the whole batch with an outage (see [stages.ErrOutage]).
func (s *natsSink) Write(ctx context.Context, batch []*stages.Message) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return stages.ErrSinkClosed
	}
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(batch))
		}
		errs[i] = err
	}
	for i, m := range batch {
		subject, err := s.subject.render(m)
		if err != nil {
			fail(i, err)
			continue
		}
		data, err := m.Payload()
		if err != nil {
			fail(i, err)
			continue
		}
		err = s.conn.nc.PublishMsg(&nats.Msg{Subject: subject, Data: data, Header: outboundHeaders(m.Header)})
		if err != nil {
			fail(i, publishError(s.conn.nc, subject, len(data), err))
		}
	}
	if err := batchOutage(errs); err != nil {
		return err
	}
	fctx, cancel := withDefaultTimeout(ctx, natsFlushTimeout)
	defer cancel()
	if err := s.conn.nc.FlushWithContext(fctx); err != nil {
		err = fmt.Errorf("flush: %w", err)
		if errors.Is(err, context.Canceled) {
			return err
		}
		// The server did not confirm it has the batch: the connection
		// is down or too slow, whatever the records.
		return stages.Outage(err)
	}
	if errs != nil {
		return &stages.BatchError{Errs: errs}
	}
	return nil
}

// publishError explains an error of a core NATS publish, marking those
// that publishing the record again cannot fix as permanent and those of
// the connection as an outage.
func publishError(nc *nats.Conn, subject string, size int, err error) error {
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return stages.Permanent(fmt.Errorf("publish on %s: record of %d bytes with its headers exceeds the server's max_payload of %d bytes: %w", subject, size, nc.MaxPayload(), err))
	case errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrHeadersNotSupported):
		return stages.Permanent(fmt.Errorf("publish on %s: %w", subject, err))
	case connOutage(err):
		return stages.Outage(fmt.Errorf("publish on %s: %w", subject, err))
	}
	return fmt.Errorf("publish on %s: %w", subject, err)
}

// Close waits for the Writes under way and closes a connection of the
// sink's own.
func (s *natsSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.conn.close()
	return nil
}
