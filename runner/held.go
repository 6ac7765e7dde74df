package runner

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// held tracks the messages a stage holds in this process: delivered by the
// server and not yet answered (acked, nak'ed or terminated), whether they
// wait in the feed's buffer or are in a worker's batch. While a message is
// held its ack_wait must not run out, or the server would deliver it again
// to another worker: every third of ack_wait, keepAlive tells the server
// that each held message is still in progress. So a record that takes
// longer than ack_wait to process, or to publish into a full downstream
// buffer, keeps its delivery.
type held struct {
	mu   sync.Mutex
	msgs map[jetstream.Msg]struct{}
}

func newHeld() *held {
	return &held{msgs: make(map[jetstream.Msg]struct{})}
}

func (h *held) add(jm jetstream.Msg) {
	h.mu.Lock()
	h.msgs[jm] = struct{}{}
	h.mu.Unlock()
}

// done forgets the messages of a batch once they are answered.
func (h *held) done(batch []inFlight) {
	h.mu.Lock()
	for i := range batch {
		delete(h.msgs, batch[i].jm)
	}
	h.mu.Unlock()
}

// forget forgets one message once it is answered.
func (h *held) forget(jm jetstream.Msg) {
	h.mu.Lock()
	delete(h.msgs, jm)
	h.mu.Unlock()
}

// keepAlive signals "in progress" for every held message each third of
// ackWait until stop is closed.
func (h *held) keepAlive(ackWait time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(max(ackWait/3, 10*time.Millisecond))
	defer t.Stop()
	var list []jetstream.Msg
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		h.mu.Lock()
		list = list[:0]
		for jm := range h.msgs {
			list = append(list, jm)
		}
		h.mu.Unlock()
		// Outside the lock: a message answered meanwhile refuses the
		// signal without a word to the server.
		for _, jm := range list {
			_ = jm.InProgress()
		}
		clear(list)
	}
}
