package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/lease"
	"github.com/sluicehq/sluice/internal/retry"
	"github.com/sluicehq/sluice/internal/schema"
)

// partitionMaxAckPending bounds the messages of one partition of one
// upstream stream delivered and not yet acknowledged: what a partition's
// owner may hold of it.
const partitionMaxAckPending = 1000

// gatePoll is how long a pull lives while a partition taken over waits
// for its previous owner's messages: how often it checks whether they are
// all acknowledged.
const gatePoll = time.Second

// owner runs the partitioned inputs of a stage in this process: it takes
// a fair share of the stage's partitions with leases in the leases bucket,
// pulls each partition it owns from one durable consumer per upstream
// stream (sluice.p.u.K read by consumer s_K) and hands all of a
// partition's messages to one worker, in order. Processes that run the
// stage register as members of it; each owns about partitions/members
// and gives back what it holds beyond that, so that partitions move when
// processes join or leave.
type owner struct {
	f       *feed
	inputs  [][]input // inputs[k]: partition k of each upstream stream
	kv      jetstream.KeyValue
	ttl     time.Duration
	member  string // this process among the stage's members
	holder  schema.LeaseHolder
	prefix  string // "partition.<pipeline>.<stage>."
	members string // "member.<pipeline>.<stage>."
	log     *slog.Logger

	owned map[int]*partition
	load  []int // partitions owned per worker
	done  sync.WaitGroup
}

// partition is one partition this process owns.
type partition struct {
	k       int
	worker  int // the worker that processes all of its messages
	held    *held
	lease   *lease.Lease
	cancel  context.CancelFunc // stops pulling
	pulling sync.WaitGroup
	lost    chan struct{} // closed when the lease is lost
	// keepStop ends the keep-alive of what the partition holds, once its
	// worker has answered it all.
	keepStop chan struct{}
	keeping  sync.WaitGroup

	mu       sync.Mutex
	leftover []jetstream.Msg            // pulled, not handed over when pulling stopped
	backlog  map[string][]jetstream.Msg // by input stream: held back while a taken-over partition waits
}

// newOwner returns the owner of the partitioned inputs of f's stage.
func newOwner(f *feed, r *run) *owner {
	parts := 0
	for _, in := range f.inputs {
		parts = max(parts, in.partition+1)
	}
	o := &owner{
		f:       f,
		inputs:  make([][]input, parts),
		kv:      r.leases,
		ttl:     r.leaseTTL,
		member:  r.member,
		holder:  schema.LeaseHolder{Worker: r.member, Host: DefaultWorkerID(), PID: os.Getpid()},
		prefix:  schema.PartitionLeasePrefix(r.p.Name, f.stage.Name),
		members: schema.MemberLeasePrefix(r.p.Name, f.stage.Name),
		log:     f.log,
		owned:   make(map[int]*partition),
		load:    make([]int, f.stage.Replicas),
	}
	for _, in := range f.inputs {
		o.inputs[in.partition] = append(o.inputs[in.partition], in)
	}
	return o
}

// run balances the partitions every third of the lease TTL until ctx is
// done, then stops pulling every partition; stop releases them.
func (o *owner) run(ctx context.Context) {
	t := time.NewTicker(o.ttl / 3)
	defer t.Stop()
	for {
		o.balance(ctx)
		select {
		case <-ctx.Done():
			for _, p := range o.owned {
				p.cancel()
				p.pulling.Wait()
			}
			return
		case <-t.C:
		}
	}
}

// balance renews this process's membership, forgets partitions whose
// lease was lost, gives back partitions beyond its share and takes free
// ones up to it.
func (o *owner) balance(ctx context.Context) {
	b, _ := json.Marshal(o.holder)
	if _, err := o.kv.Put(ctx, o.members+o.member, b); err != nil {
		if ctx.Err() == nil {
			o.log.Warn("partitions: membership not renewed", "err", err)
		}
		return
	}
	members := 1
	if keys, err := o.kv.ListKeysFiltered(ctx, o.members+"*"); err == nil {
		members = 0
		for range keys.Keys() {
			members++
		}
		members = max(members, 1)
	}
	for k, p := range o.owned {
		select {
		case <-p.lost:
			o.log.Warn("partition lease lost: another process may own it now", "partition", k)
			o.stopPartition(ctx, p, false)
		default:
		}
	}
	n := len(o.inputs)
	share := (n + members - 1) / members
	for k := n - 1; k >= 0 && len(o.owned) > share; k-- {
		if p, ok := o.owned[k]; ok {
			o.log.Info("partition given back", "partition", k, "members", members)
			o.stopPartition(ctx, p, true)
		}
	}
	// Start from a place of our own, so that processes joining at once
	// do not all race for partition 0.
	start := schema.Partition(o.member, n)
	for i := 0; i < n && len(o.owned) < share && ctx.Err() == nil; i++ {
		k := (start + i) % n
		if _, ok := o.owned[k]; ok {
			continue
		}
		o.holder.Since = time.Now().UTC()
		l, ok, err := lease.Acquire(ctx, o.kv, o.ttl, o.prefix+strconv.Itoa(k), o.holder)
		if err != nil {
			if ctx.Err() == nil {
				o.log.Warn("partition lease not taken", "partition", k, "err", err)
			}
			return
		}
		if ok {
			o.startPartition(ctx, k, l)
		}
	}
}

// startPartition starts pulling partition k under lease l, for the worker
// with the fewest partitions.
func (o *owner) startPartition(ctx context.Context, k int, l *lease.Lease) {
	w := 0
	for i, n := range o.load {
		if n < o.load[w] {
			w = i
		}
	}
	o.load[w]++
	pctx, cancel := context.WithCancel(ctx)
	p := &partition{k: k, worker: w, lease: l, cancel: cancel, lost: make(chan struct{}), keepStop: make(chan struct{}),
		held: newHeld(partitionMaxAckPending * len(o.inputs[k])), backlog: make(map[string][]jetstream.Msg)}
	o.owned[k] = p
	if o.f.stage.Spec != nil && o.f.stage.Spec.Watermarks {
		// Before its first message, the worker loads the partition's
		// state.
		select {
		case o.f.chans[w] <- delivery{part: k, assign: true}:
		case <-ctx.Done():
		}
	}
	p.pulling.Go(func() { l.Keep(pctx, func() { close(p.lost); cancel() }) })
	p.keeping.Go(func() { p.held.keepAlive(o.f.ackWait, p.keepStop) })
	for _, in := range o.inputs[k] {
		p.pulling.Go(func() { o.pull(pctx, p, in) })
	}
	o.log.Debug("partition taken", "partition", k, "worker", w)
}

// stopPartition stops pulling partition p and, once its worker has
// answered every message handed over, releases its lease if release is
// set (a lost lease is not ours to delete).
func (o *owner) stopPartition(ctx context.Context, p *partition, release bool) {
	p.cancel()
	p.pulling.Wait()
	// Messages pulled and not handed over stay unanswered: their ack_wait
	// runs out and the next owner gets them again, in order.
	p.mu.Lock()
	for _, jm := range p.leftover {
		p.held.forget(jm)
	}
	for _, held := range p.backlog {
		for _, jm := range held {
			p.held.forget(jm)
		}
	}
	p.leftover = nil
	clear(p.backlog)
	p.mu.Unlock()
	p.held.waitEmpty(ctx)
	close(p.keepStop)
	p.keeping.Wait()
	if release {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = p.lease.Release(rctx)
		cancel()
	}
	delete(o.owned, p.k)
	o.load[p.worker]--
}

// stop answers, once the workers have returned and pulling has stopped,
// what the owned partitions hold: it naks what waits in the workers'
// channels and was left over, each partition in order, so that the next
// owner gets it in order; what a taken-over partition held back stays
// unanswered, to come back after ack_wait behind its previous owner's
// messages. Then it releases the partitions and its membership.
func (o *owner) stop(chans []chan delivery) {
	waiting := make(map[int][]jetstream.Msg)
	for _, ch := range chans {
	drain:
		for {
			select {
			case d := <-ch:
				if d.jm != nil {
					waiting[d.part] = append(waiting[d.part], d.jm)
				}
			default:
				break drain
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for k, p := range o.owned {
		p.mu.Lock()
		for _, jm := range append(waiting[k], p.leftover...) {
			_ = jm.Nak()
		}
		p.leftover = nil
		clear(p.backlog)
		p.mu.Unlock()
		close(p.keepStop)
		p.keeping.Wait()
		select {
		case <-p.lost:
		default:
			_ = p.lease.Release(ctx)
		}
	}
	_ = o.kv.Delete(ctx, o.members+o.member)
}

// pull reads partition p of input in and hands its messages to p's worker
// in order until ctx is done. A partition taken over from a process that
// still had messages of it unacknowledged (it died, or gave the partition
// back while acknowledgements were on their way) waits for those first:
// they come back once their ack_wait runs out, not necessarily in order
// (each on its own expiry), so everything it gets is held back until
// every unacknowledged message of the partition is in its hands; then it
// hands them over in stream order.
func (o *owner) pull(ctx context.Context, p *partition, in input) {
	gated, err := takenWithPending(ctx, in)
	if err != nil {
		return
	}
	ch := o.f.chans[p.worker]
	var fails int
	for {
		n := p.held.reserve(ctx, 1, partitionMaxAckPending)
		if n == 0 {
			return
		}
		expiry := pullExpiry
		if gated {
			expiry = gatePoll
		}
		fctx, cancel := context.WithTimeout(ctx, expiry)
		batch, err := in.consumer.Fetch(n, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(min(pullHeartbeat, expiry/3)))
		got := 0
		if err == nil {
			for jm := range batch.Messages() {
				got++
				p.held.add(jm)
				if gated {
					p.mu.Lock()
					p.backlog[in.stream] = append(p.backlog[in.stream], jm)
					p.mu.Unlock()
					continue
				}
				if !o.handOver(ctx, ch, p, jm) {
					// The rest of the fetch: not handed over either.
					for jm := range batch.Messages() {
						p.held.add(jm)
						p.mu.Lock()
						p.leftover = append(p.leftover, jm)
						p.mu.Unlock()
						got++
					}
				}
			}
			err = batch.Error()
		}
		cancel()
		p.held.unreserve(n - got)
		if ctx.Err() != nil {
			return
		}
		if gated {
			var ok bool
			if gated, ok = o.openGate(ctx, ch, p, in); !ok {
				return
			}
		}
		if err == nil || got > 0 || errors.Is(err, context.DeadlineExceeded) {
			fails = 0
			continue
		}
		fails++
		o.log.Debug("cannot read partition, retrying", "partition", p.k, "stream", in.stream, "err", err)
		if !retry.Sleep(ctx, pullRetry.Delay(fails-1)) {
			return
		}
	}
}

// handOver sends jm to the worker of p, or, if ctx ends first, keeps it
// as a leftover and reports false.
func (o *owner) handOver(ctx context.Context, ch chan delivery, p *partition, jm jetstream.Msg) bool {
	select {
	case ch <- delivery{jm: jm, h: p.held, part: p.k}:
		return true
	case <-ctx.Done():
		p.mu.Lock()
		p.leftover = append(p.leftover, jm)
		p.mu.Unlock()
		return false
	}
}

// openGate checks whether every message of input in that is delivered
// and not acknowledged is held back here; if so it hands them over in
// stream order and reports the gate open (false). It reports ok false if
// ctx ended.
func (o *owner) openGate(ctx context.Context, ch chan delivery, p *partition, in input) (gated, ok bool) {
	info, err := in.consumer.Info(ctx)
	p.mu.Lock()
	backlog := p.backlog[in.stream]
	if err != nil || info.NumAckPending > len(backlog) {
		p.mu.Unlock()
		return true, ctx.Err() == nil
	}
	delete(p.backlog, in.stream)
	p.mu.Unlock()
	slices.SortFunc(backlog, func(a, b jetstream.Msg) int { return cmp.Compare(streamSeq(a), streamSeq(b)) })
	for i, jm := range backlog {
		if !o.handOver(ctx, ch, p, jm) {
			p.mu.Lock()
			p.leftover = append(p.leftover, backlog[i+1:]...)
			p.mu.Unlock()
			return false, false
		}
	}
	o.log.Info("partition taken over: the previous owner's messages are back, in order", "partition", p.k, "messages", len(backlog))
	return false, true
}

// takenWithPending reports whether the consumer of in has messages
// delivered and not yet acknowledged: a previous owner's.
func takenWithPending(ctx context.Context, in input) (bool, error) {
	for {
		info, err := in.consumer.Info(ctx)
		if err == nil {
			return info.NumAckPending > 0, nil
		}
		if !retry.Sleep(ctx, 250*time.Millisecond) {
			return false, ctx.Err()
		}
	}
}

// streamSeq returns the stream sequence of jm, 0 if it has no metadata.
func streamSeq(jm jetstream.Msg) uint64 {
	meta, err := jm.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}

// memberID returns a name for this process among a stage's members, made
// of what a KV key may hold.
func memberID(worker string) string {
	clean := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			return c
		}
		return '_'
	}, worker)
	return clean + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
}
