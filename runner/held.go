package runner

import (
	"context"
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
//
// held also bounds what the process holds: the feed reserves room for a
// pull before it asks the server for messages, so that everything the
// server delivers is held, and kept alive, from the moment it arrives.
type held struct {
	mu       sync.Mutex
	msgs     map[inputMsg]struct{}
	limit    int           // most messages held and reserved at once
	reserved int           // room reserved for messages pulled but not arrived
	waiting  bool          // a reserve waits on room
	room     chan struct{} // closed, and replaced, when room is made for a waiting reserve
}

func newHeld(limit int) *held {
	return &held{msgs: make(map[inputMsg]struct{}), limit: limit, room: make(chan struct{})}
}

// reserve waits until there is room for at least least messages, reserves
// room for up to most and returns how many. It returns 0 once ctx is done.
func (h *held) reserve(ctx context.Context, least, most int) int {
	for {
		h.mu.Lock()
		if free := h.limit - len(h.msgs) - h.reserved; free >= least {
			n := min(free, most)
			h.reserved += n
			h.mu.Unlock()
			return n
		}
		h.waiting = true
		room := h.room
		h.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return 0
		}
	}
}

// unreserve gives back room reserved for n messages that did not come.
func (h *held) unreserve(n int) {
	if n == 0 {
		return
	}
	h.mu.Lock()
	h.reserved -= n
	h.freed()
	h.mu.Unlock()
}

// add holds jm, which arrived in room reserved for it.
func (h *held) add(jm jetstream.Msg) {
	h.mu.Lock()
	h.reserved--
	h.msgs[jm] = struct{}{}
	h.mu.Unlock()
}

// done forgets the messages of a batch once they are answered.
func (h *held) done(batch []inFlight) {
	h.mu.Lock()
	for i := range batch {
		delete(h.msgs, batch[i].msg)
	}
	h.freed()
	h.mu.Unlock()
}

// forget forgets jm, left unanswered for the server to deliver again.
func (h *held) forget(jm jetstream.Msg) {
	h.mu.Lock()
	delete(h.msgs, jm)
	h.freed()
	h.mu.Unlock()
}

// waitEmpty waits until no message is held, or ctx is done.
func (h *held) waitEmpty(ctx context.Context) {
	for {
		h.mu.Lock()
		if len(h.msgs) == 0 {
			h.mu.Unlock()
			return
		}
		h.waiting = true
		room := h.room
		h.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return
		}
	}
}

// freed wakes a waiting reserve. h.mu is held.
func (h *held) freed() {
	if h.waiting {
		h.waiting = false
		close(h.room)
		h.room = make(chan struct{})
	}
}

// keepAlive signals "in progress" for every held message each third of
// ackWait until stop is closed.
func (h *held) keepAlive(ackWait time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(max(ackWait/3, 10*time.Millisecond))
	defer t.Stop()
	var list []inputMsg
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
