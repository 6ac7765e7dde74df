package runner

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
)

// A pull request lives pullExpiry; the server sends a heartbeat every
// pullHeartbeat while it waits, and nats.go pulls again when two are
// missed. Shorter than nats.go's defaults (30s and 15s) so that a pull lost
// with a server or a consumer leader that moved is replaced in seconds.
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// feed pulls a stage's inputs once per process and hands the messages to
// all of the stage's workers in this process through one channel: adding
// replicas adds processing goroutines, not pull subscriptions competing
// for the same consumer.
type feed struct {
	stage   *pipeline.Stage
	inputs  []input
	log     *slog.Logger
	ch      chan jetstream.Msg
	held    *held
	ackWait time.Duration

	cancel    context.CancelFunc
	consuming []jetstream.ConsumeContext
	stopKeep  chan struct{} // closed to end keepAlive
	keeping   sync.WaitGroup
}

func newFeed(st *pipeline.Stage, inputs []input, ackWait time.Duration, log *slog.Logger) *feed {
	return &feed{
		stage:   st,
		inputs:  inputs,
		log:     log,
		ch:      make(chan jetstream.Msg, batchSize),
		held:    newHeld(),
		ackWait: ackWait,
	}
}

// start begins pulling. Until ctx is done, every message pulled is handed
// to a worker; after, a message a callback could not hand over is nak'ed
// for redelivery.
func (f *feed) start(ctx context.Context) error {
	ctx, f.cancel = context.WithCancel(ctx)
	f.stopKeep = make(chan struct{})
	f.keeping.Go(func() { f.held.keepAlive(f.ackWait, f.stopKeep) })
	deliver := func(jm jetstream.Msg) {
		f.held.add(jm)
		select {
		case f.ch <- jm:
		case <-ctx.Done():
			_ = jm.Nak()
			f.held.forget(jm)
		}
	}
	onErr := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// Missed heartbeats and the like: nats.go pulls again by itself.
		f.log.Debug("pull", "err", err)
	})
	// nats.go keeps up to this many messages requested per consumer: enough
	// for every worker to fill a batch, within the consumer's ack window.
	pull := min(batchSize*f.stage.Replicas, defaultMaxAckPending/2)
	for _, in := range f.inputs {
		cc, err := in.consumer.Consume(deliver, jetstream.PullMaxMessages(pull),
			jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat), onErr)
		if err != nil {
			return fmt.Errorf("stage %q: read %s: %w", f.stage.Name, in.stream, err)
		}
		f.consuming = append(f.consuming, cc)
	}
	return nil
}

// stop ends pulling once the workers have returned, and naks what was
// pulled but not processed.
func (f *feed) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	for _, cc := range f.consuming {
		// Drain hands what nats.go holds to deliver, which naks it: with
		// Stop those messages would wait out ack_wait.
		cc.Drain()
	}
	for _, cc := range f.consuming {
		<-cc.Closed()
	}
	if f.stopKeep != nil {
		close(f.stopKeep)
		f.keeping.Wait()
	}
	for {
		select {
		case jm := <-f.ch:
			_ = jm.Nak()
		default:
			return
		}
	}
}
