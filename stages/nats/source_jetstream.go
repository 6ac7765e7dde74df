package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
)

// Deliver policies of a consumer the jetstream source creates.
const (
	deliverAll            = "all"
	deliverNew            = "new"
	deliverLast           = "last"
	deliverLastPerSubject = "last_per_subject"
)

const (
	defaultJSMaxInFlight = 1000
	defaultJSAckWait     = 30 * time.Second
	defaultJSNakDelay    = time.Second
)

func jetstreamSourceSpec() stages.Spec {
	return stages.Spec{
		Name:    "jetstream",
		Summary: "Read records from a durable consumer of a JetStream stream outside the pipeline",
		Doc: `Pulls messages from the durable consumer durable of the existing ` +
			`stream stream and yields each payload, as it is, as a record. If the ` +
			`consumer does not exist the source creates it: a pull consumer with ` +
			`explicit acks, filter_subject, the deliver policy and ack_wait. An ` +
			`existing one must be a pull consumer with explicit acks and, if ` +
			`filter_subject is given, have that filter; deliver and ack_wait are ` +
			`then left as the consumer has them. Every process that runs the ` +
			`stage pulls from the same consumer, so each message goes to one.

Delivery is at-least-once, and effectively once into the pipeline: ` +
			`an upstream message is acknowledged only once its record is stored ` +
			`in the pipeline's first stream. A record that was not stored (the ` +
			`run stopped) is nak'ed, to be redelivered after nak_delay; one that ` +
			`was dead-lettered (too large for the pipeline's server, for ` +
			`instance) is terminated, so that it is not redelivered. Each record's ` +
			`identity (Nats-Msg-Id) is the stream name and the message's stream ` +
			`sequence, STREAM:SEQ, so that a message redelivered after a crash or ` +
			`an expired ack_wait is stored once within the pipeline's ` +
			`dedup_window.

At most max_in_flight records read are waiting for their fate at a ` +
			`time, plus up to 100 messages pulled ahead. While a record waits ` +
			`(the pipeline's first stream is full, say), the source tells the ` +
			`upstream server that it is in progress every third of the consumer's ` +
			`ack_wait, so the wait can be long. Messages pulled ahead are not ` +
			`extended: keep the consumer's ack_wait above the time the pipeline ` +
			`takes to publish max_in_flight records, or they are redelivered ` +
			`(and the duplicates dropped). The consumer's own ` +
			`max_ack_pending caps all the processes that pull from it together. ` +
			`On close the source naks what it pulled ahead and did not hand over, ` +
			`so that it is redelivered at once rather than after ack_wait.

Headers: the message's headers become the record's, except the Nats-* ` +
			`ones (Nats-Msg-Id is replaced by the identity above) and the ` +
			`Sluice-* ones that the runner sets; Sluice-Key and Sluice-Event-Time ` +
			`pass. Sluice-Source-Subject is set to the message's subject.

` + natsConnDoc + `

Example:

    - name: orders
      source: jetstream
      with:
        stream: ORDERS
        durable: sluice-etl
        filter_subject: orders.eu.>
        deliver: new`,
		Params: append([]stages.Param{
			{Name: "stream", Type: stages.TypeString, Required: true, Doc: "The stream to read; it must exist."},
			{Name: "durable", Type: stages.TypeString, Required: true, Doc: "Name of the durable pull consumer to read from, created if it does not exist."},
			{Name: "filter_subject", Type: stages.TypeString, Doc: "Subject filter (wildcards allowed) of the consumer; an existing consumer must have it."},
			{Name: "deliver", Type: stages.TypeString, Default: deliverAll, Enum: []string{deliverAll, deliverNew, deliverLast, deliverLastPerSubject}, Doc: "Where a consumer the source creates starts: all (the stream's first message), new (messages stored from now on), last, or last_per_subject."},
			{Name: "ack_wait", Type: stages.TypeDuration, Default: defaultJSAckWait, Doc: "Ack wait of a consumer the source creates: how long the server waits for an acknowledgement before it redelivers."},
			{Name: "max_in_flight", Type: stages.TypeInt, Default: defaultJSMaxInFlight, Doc: "Records read and not yet stored in the pipeline, at most."},
			{Name: "nak_delay", Type: stages.TypeDuration, Default: defaultJSNakDelay, Doc: "How long the upstream server waits before redelivering a record that was not stored."},
		}, natsConnParams...),
		Check:     checkJetStreamSource,
		NewSource: newJetStreamSource,
	}
}

// jsPullAhead is how many messages the source pulls ahead at most.
const jsPullAhead = 100

// Pull requests of the source live jsPullExpiry, and the server sends a
// heartbeat every jsPullHeartbeat while one waits, as the runner's own.
const (
	jsPullExpiry    = 10 * time.Second
	jsPullHeartbeat = 2 * time.Second
)

// jsSetupTimeout bounds the look-ups and creations at start.
const jsSetupTimeout = 10 * time.Second

func checkJetStreamSource(p stages.Params) error {
	for _, name := range []string{"stream", "durable"} {
		if err := checkJSName(p.String(name)); err != nil {
			return stages.ParamErrorf(name, "%v", err)
		}
	}
	if p.Has("filter_subject") {
		if err := checkSubject(p.String("filter_subject"), true); err != nil {
			return stages.ParamErrorf("filter_subject", "%v", err)
		}
	}
	if n := p.Int("max_in_flight"); n < 1 {
		return stages.ParamErrorf("max_in_flight", "must be >= 1 (got %d)", n)
	}
	if d := p.Duration("ack_wait"); d < time.Second {
		return stages.ParamErrorf("ack_wait", "must be at least 1s (got %s)", d)
	}
	return checkNATSConn(p)
}

// checkJSName checks a stream or consumer name as the server does.
func checkJSName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if strings.ContainsAny(s, ".*>/\\ \t\r\n") {
		return errors.New("must not contain '.', '*', '>', '/', '\\' or white space")
	}
	return nil
}

// jsSource reads a pull consumer through a Messages iterator, which it
// starts at the first Read.
type jsSource struct {
	conn     natsConn
	cons     jetstream.Consumer
	stream   string
	durable  string
	nakDelay time.Duration
	keepTick time.Duration // how often records in flight are reported in progress
	log      *slog.Logger

	// slots holds a token for each record read and not yet acknowledged:
	// Read blocks while it is full.
	slots chan struct{}

	start   sync.Once
	iter    jetstream.MessagesContext
	iterErr error

	mu       sync.Mutex
	inFlight map[jetstream.Msg]struct{}

	done      chan struct{} // closed by Close
	keeping   sync.WaitGroup
	closed    atomic.Bool
	closeOnce sync.Once

	// Of the last message read: the consumer's messages pending after it,
	// and when it was stored upstream (Unix nanoseconds), for Lag.
	lastPending atomic.Uint64
	lastStored  atomic.Int64
}

var (
	_ stages.Source  = (*jsSource)(nil)
	_ stages.Lagging = (*jsSource)(nil)
)

// Lag returns how long ago the last message read was stored upstream if
// the consumer had more pending after it, else 0 (caught up, or nothing
// read yet): the age of what the source is working through.
func (s *jsSource) Lag() time.Duration {
	if s.lastPending.Load() == 0 {
		return 0
	}
	return max(time.Since(time.Unix(0, s.lastStored.Load())), 0)
}

func newJetStreamSource(p stages.Params, info stages.Info) (stages.Source, error) {
	if err := checkJetStreamSource(p); err != nil {
		return nil, err
	}
	log := stageLogger(info)
	conn, err := openNATSConn(p, info, log)
	if err != nil {
		return nil, err
	}
	s := &jsSource{
		conn:     conn,
		stream:   p.String("stream"),
		durable:  p.String("durable"),
		nakDelay: p.Duration("nak_delay"),
		log:      log,
		slots:    make(chan struct{}, max(p.Int("max_in_flight"), 1)),
		inFlight: make(map[jetstream.Msg]struct{}),
		done:     make(chan struct{}),
	}
	if err := s.bind(p); err != nil {
		conn.close()
		return nil, err
	}
	return s, nil
}

// bind finds the consumer, or creates it, and checks that it can be read
// as the source reads.
func (s *jsSource) bind(p stages.Params) error {
	ctx, cancel := context.WithTimeout(context.Background(), jsSetupTimeout)
	defer cancel()
	js, err := jetstream.New(s.conn.nc)
	if err != nil {
		return err
	}
	st, err := js.Stream(ctx, s.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s does not exist", s.stream)
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.stream, err)
	}
	filter := p.String("filter_subject")
	cons, err := st.Consumer(ctx, s.durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = st.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       s.durable,
			FilterSubject: filter,
			DeliverPolicy: deliverPolicy(p.String("deliver")),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       p.Duration("ack_wait"),
		})
		if errors.Is(err, jetstream.ErrConsumerExists) { // another process was first
			cons, err = st.Consumer(ctx, s.durable)
		}
		if err == nil {
			s.log.Info("consumer created", "stream", s.stream, "durable", s.durable, "deliver", p.String("deliver"))
		}
	}
	if err != nil {
		return fmt.Errorf("stream %s: consumer %s: %w", s.stream, s.durable, err)
	}
	cfg := cons.CachedInfo().Config
	switch {
	case cfg.DeliverSubject != "":
		return fmt.Errorf("stream %s: consumer %s is a push consumer: the source needs a pull consumer", s.stream, s.durable)
	case cfg.AckPolicy != jetstream.AckExplicitPolicy:
		return fmt.Errorf("stream %s: consumer %s acknowledges %s: the source needs explicit acks", s.stream, s.durable, cfg.AckPolicy)
	case filter != "" && cfg.FilterSubject != filter && !(len(cfg.FilterSubjects) == 1 && cfg.FilterSubjects[0] == filter):
		return fmt.Errorf("stream %s: consumer %s filters %s, not filter_subject %s", s.stream, s.durable, consumerFilter(cfg), filter)
	}
	s.cons = cons
	ackWait := cfg.AckWait
	if ackWait <= 0 {
		ackWait = defaultJSAckWait
	}
	s.keepTick = max(ackWait/3, 100*time.Millisecond)
	return nil
}

func consumerFilter(cfg jetstream.ConsumerConfig) string {
	switch {
	case cfg.FilterSubject != "":
		return cfg.FilterSubject
	case len(cfg.FilterSubjects) > 0:
		return strings.Join(cfg.FilterSubjects, ", ")
	}
	return "nothing (the whole stream)"
}

func deliverPolicy(s string) jetstream.DeliverPolicy {
	switch s {
	case deliverNew:
		return jetstream.DeliverNewPolicy
	case deliverLast:
		return jetstream.DeliverLastPolicy
	case deliverLastPerSubject:
		return jetstream.DeliverLastPerSubjectPolicy
	}
	return jetstream.DeliverAllPolicy
}

// begin starts the iterator and the goroutine that keeps the records in
// flight from being redelivered.
func (s *jsSource) begin() {
	s.iter, s.iterErr = s.cons.Messages(
		jetstream.PullMaxMessages(min(cap(s.slots), jsPullAhead)),
		jetstream.PullExpiry(jsPullExpiry),
		jetstream.PullHeartbeat(jsPullHeartbeat),
	)
	if s.iterErr != nil {
		s.iterErr = fmt.Errorf("stream %s: consumer %s: %w", s.stream, s.durable, s.iterErr)
		return
	}
	s.keeping.Go(s.keepAlive)
}

func (s *jsSource) Read(ctx context.Context) (*stages.Message, error) {
	if s.closed.Load() {
		return nil, stages.ErrSourceClosed
	}
	s.start.Do(s.begin)
	if s.iterErr != nil {
		return nil, s.iterErr
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, stages.ErrSourceClosed
	}
	jm, err := s.iter.Next(jetstream.NextContext(ctx))
	if err != nil {
		<-s.slots
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case s.closed.Load():
			return nil, stages.ErrSourceClosed
		}
		return nil, fmt.Errorf("stream %s: consumer %s: %w", s.stream, s.durable, err)
	}
	m := stages.NewMessage(jm.Data())
	m.Header = inboundHeaders(jm.Headers(), false)
	m.Header[HeaderSourceSubject] = []string{jm.Subject()}
	if meta, err := jm.Metadata(); err == nil {
		m.Header[stages.HeaderMsgID] = []string{meta.Stream + ":" + strconv.FormatUint(meta.Sequence.Stream, 10)}
		s.lastPending.Store(meta.NumPending)
		s.lastStored.Store(meta.Timestamp.UnixNano())
	}
	s.mu.Lock()
	s.inFlight[jm] = struct{}{}
	s.mu.Unlock()
	m.OnAck(func(err error) { s.settle(jm, err) })
	return m, nil
}

// settle answers the upstream server once the runner reported the
// record's fate: ack when stored, term when dead-lettered, nak otherwise.
func (s *jsSource) settle(jm jetstream.Msg, err error) {
	s.mu.Lock()
	_, ok := s.inFlight[jm]
	delete(s.inFlight, jm)
	s.mu.Unlock()
	if !ok { // nak'ed by Close already
		return
	}
	<-s.slots
	var aerr error
	switch {
	case err == nil:
		aerr = jm.Ack()
	case errors.Is(err, stages.ErrDeadLettered):
		aerr = jm.TermWithReason("dead-lettered by sluice")
	default:
		aerr = jm.NakWithDelay(s.nakDelay)
	}
	if aerr != nil {
		s.log.Warn("upstream message not acknowledged: it will be redelivered", "stream", s.stream, "durable", s.durable, "err", aerr)
	}
}

// keepAlive reports the records in flight in progress every keepTick,
// so that the upstream server does not redeliver them while the pipeline
// is slow to store them.
func (s *jsSource) keepAlive() {
	t := time.NewTicker(s.keepTick)
	defer t.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-t.C:
		case <-s.done:
			return
		}
		s.mu.Lock()
		for jm := range s.inFlight {
			msgs = append(msgs, jm)
		}
		s.mu.Unlock()
		for _, jm := range msgs {
			_ = jm.InProgress() // fails once acknowledged: nothing to extend
		}
		clear(msgs)
		msgs = msgs[:0]
	}
}

// Close stops the iterator, naks what it pulled ahead and what was read
// but never settled, and closes a connection of the stage's own.
func (s *jsSource) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.start.Do(func() { s.iterErr = stages.ErrSourceClosed }) // no iterator from now on
		close(s.done)
		s.keeping.Wait()
		var naks []jetstream.Msg
		if s.iter != nil {
			// Drain hands over what was pulled ahead, and ends once the
			// server has dropped the subscription: only then can naks
			// not be redelivered to its pull request, in vain.
			s.iter.Drain()
			dctx, cancel := withDefaultTimeout(ctx, natsCloseWait)
			for {
				jm, err := s.iter.Next(jetstream.NextContext(dctx))
				if err != nil {
					break
				}
				naks = append(naks, jm)
			}
			cancel()
			s.iter.Stop()
		}
		s.mu.Lock()
		for jm := range s.inFlight {
			naks = append(naks, jm)
			delete(s.inFlight, jm)
		}
		s.mu.Unlock()
		for _, jm := range naks {
			_ = jm.Nak()
		}
		s.conn.close()
	})
	return nil
}
