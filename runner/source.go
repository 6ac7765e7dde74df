package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// sourceRead is one result of Source.Read.
type sourceRead struct {
	m   *stages.Message
	err error
}

// sourceLoop runs one source stage: a reader goroutine calls Read while
// this loop publishes what was read in batches and waits for the acks, so
// reading and publishing overlap.
type sourceLoop struct {
	run     *run
	stage   *pipeline.Stage
	src     stages.Source
	stats   *stageStats
	log     *slog.Logger
	subject string
	idBase  string // "p/s/r<run>/"
	origin  string // "s/r<run>/"
	pub     publishBatch
	seq     uint64 // records read so far in this run
}

func newSourceLoop(r *run, st *pipeline.Stage, src stages.Source) (*sourceLoop, error) {
	js, err := jetstream.New(r.nc, jetstream.WithPublishAsyncMaxPending(4*batchSize))
	if err != nil {
		return nil, err
	}
	runID := "r" + strconv.FormatUint(r.id, 10) + "/"
	l := &sourceLoop{
		run:     r,
		stage:   st,
		src:     src,
		stats:   r.stats[st.Name],
		log:     r.log.With("stage", st.Name),
		subject: pipeline.Subject(r.p.Name, st.Name),
		idBase:  r.p.Name + "/" + st.Name + "/" + runID,
		origin:  st.Name + "/" + runID,
	}
	l.pub.js, l.pub.fastOK = js, true
	return l, nil
}

// loop reads until the source ends (nil), ctx ends (ctx.Err()) or the
// source fails. Everything read before it returns has been published and
// acknowledged, unless ctx ended first.
func (l *sourceLoop) loop(ctx context.Context) error {
	ch := make(chan sourceRead, batchSize)
	readCtx, stopReading := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopReading()
		wg.Wait()
	}()
	wg.Go(func() {
		defer close(ch)
		for {
			m, err := l.src.Read(readCtx)
			if errors.Is(err, io.EOF) || readCtx.Err() != nil {
				return
			}
			select {
			case ch <- sourceRead{m, err}:
			case <-readCtx.Done():
				return
			}
			if err != nil && !stages.IsPermanent(err) {
				return
			}
		}
	})

	batch := make([]sourceRead, 0, batchSize)
	for {
		batch = batch[:0]
		r, ok := <-ch
		if !ok {
			return ctx.Err()
		}
		batch = append(batch, r)
	fill:
		for len(batch) < batchSize {
			select {
			case r, ok := <-ch:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if err := l.publish(ctx, batch); err != nil {
			return err
		}
	}
}

// publish publishes a batch of reads and waits until JetStream has them
// all, retrying while the first stage's buffer is full.
func (l *sourceLoop) publish(ctx context.Context, batch []sourceRead) error {
	l.pub.reset()
	dead := 0
	for _, r := range batch {
		if r.err != nil && !stages.IsPermanent(r.err) {
			return fmt.Errorf("stage %q: read: %w", l.stage.Name, r.err)
		}
		l.seq++
		n := strconv.FormatUint(l.seq, 10)
		l.stats.in.Add(1)
		var data []byte
		var err error
		if r.m != nil {
			data, err = r.m.Payload()
		}
		if r.err != nil || err != nil {
			reason := r.err
			if reason == nil {
				reason = err
			}
			var hdr nats.Header
			if r.m != nil {
				hdr = r.m.Header
			}
			l.pub.add(deadLetter(l.run.p.Name, l.stage.Name, l.idBase+n+"/dlq", data, hdr, reason, 0))
			dead++
			continue
		}
		h := r.m.Header
		if h == nil {
			h = make(nats.Header, 2)
		}
		h[stages.HeaderMsgID] = []string{l.idBase + n}
		h[stages.HeaderOrigin] = []string{l.origin + n}
		l.pub.addOutput(&nats.Msg{Subject: l.subject, Data: data, Header: h})
	}
	// A source cannot nak: it retries until JetStream has the batch or the
	// run is stopped.
	if left := l.pub.wait(ctx); left > 0 {
		return ctx.Err()
	}
	l.stats.dead.Add(uint64(dead))
	l.stats.out.Add(uint64(len(batch) - dead))
	return nil
}
