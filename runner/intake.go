package runner

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// intake logs, by partition, the inputs a Windowed stage took into its
// state, so that a copy of one (a record that may have been published
// twice: stages.Message.MaybeCopy) is not taken twice, however long ago
// the original was. Each batch adds one entry per partition it took inputs
// of, with the digests of their IDs, published with the batch's outputs;
// the partition's checkpoint, stored after them, records the stream
// sequence of that entry (partMarks.Intake). An entry past the sequence
// its partition's checkpoint records belongs to a batch that was not
// checkpointed (its inputs are delivered again): it is deleted when the
// partition is loaded. A possible copy is looked up in the entries of its
// partition; one found there is acknowledged without being processed.
//
// The log holds 16 bytes a record of the run on disk and nothing in
// memory beyond the batch in hand; a new run purges it.
type intake struct {
	str   jetstream.Stream
	p, s  string
	run   uint64
	h     hash.Hash
	taken map[int]map[[16]byte]struct{} // the batch's entries, by partition
	at    map[int]int                   // the publish index of each partition's entry in the batch
}

func newIntake(ctx context.Context, r *run, st *pipeline.Stage) (*intake, error) {
	js, err := jetstream.New(r.nc)
	if err != nil {
		return nil, err
	}
	name := schema.IntakeStreamName(r.p.Name)
	cfg := jetstream.StreamConfig{
		Name:        name,
		Description: fmt.Sprintf("sluice pipeline %s: inputs its windowed stages took", r.p.Name),
		Subjects:    schema.IntakeSubjects(r.p.Name),
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    r.p.Settings.Replicas,
	}
	str, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return &intake{str: str, p: r.p.Name, s: st.Name, run: r.id, h: fnv.New128a(),
		taken: make(map[int]map[[16]byte]struct{}), at: make(map[int]int)}, nil
}

// forgetIntake purges the intake log of pipeline p: a new run begins.
func forgetIntake(ctx context.Context, js jetstream.JetStream, p string) error {
	str, err := js.Stream(ctx, schema.IntakeStreamName(p))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err == nil {
		err = str.Purge(ctx)
	}
	return err
}

// digest returns the digest of message ID id.
func (in *intake) digest(id string) [16]byte {
	in.h.Reset()
	_, _ = io.WriteString(in.h, id)
	var d [16]byte
	in.h.Sum(d[:0])
	return d
}

// take notes that partition k took input m into its state.
func (in *intake) take(k int, m *stages.Message) {
	if ids := m.Header[stages.HeaderMsgID]; len(ids) == 1 {
		set := in.taken[k]
		if set == nil {
			set = make(map[[16]byte]struct{})
			in.taken[k] = set
		}
		set[in.digest(ids[0])] = struct{}{}
	}
}

// tookInBatch reports whether partition k took the input of digest d in
// the batch in hand.
func (in *intake) tookInBatch(k int, d [16]byte) bool {
	_, ok := in.taken[k][d]
	return ok
}

// publish publishes the batch's entries in pub.
func (in *intake) publish(pub *publishBatch) {
	for k, set := range in.taken {
		data := make([]byte, 0, 16*len(set))
		for d := range set {
			data = append(data, d[:]...)
		}
		in.at[k] = pub.add(&nats.Msg{Subject: schema.IntakeSubject(in.p, in.s, in.run, k), Data: data})
	}
	clear(in.taken)
}

// stored returns the stream sequence of the entry of partition k that pub
// stored, 0 if the batch has none.
func (in *intake) stored(pub *publishBatch, k int) uint64 {
	i, ok := in.at[k]
	if !ok {
		return 0
	}
	return pub.seq(i)
}

// forgetBatch forgets the batch's entries, published or not.
func (in *intake) forgetBatch() {
	clear(in.taken)
	clear(in.at)
}

// voidAfter deletes the entries of partition k past sequence last: their
// batches were not checkpointed.
func (in *intake) voidAfter(ctx context.Context, k int, last uint64) error {
	subject := schema.IntakeSubject(in.p, in.s, in.run, k)
	str := in.str
	for {
		m, err := str.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if m.Sequence <= last {
			return nil
		}
		if err := str.DeleteMsg(ctx, m.Sequence); err != nil {
			return err
		}
	}
}

// intakeScanWait bounds the wait for each fetch of a scan of a partition's
// entries.
const intakeScanWait = 5 * time.Second

// lookup reads the entries of partition k and deletes from want the
// digests it finds.
func (in *intake) lookup(ctx context.Context, k int, want map[[16]byte]struct{}) error {
	subject := schema.IntakeSubject(in.p, in.s, in.run, k)
	str := in.str
	last, err := str.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	cons, err := str.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return err
	}
	for len(want) > 0 {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(intakeScanWait))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			data := m.Data()
			for i := 0; i+16 <= len(data); i += 16 {
				delete(want, [16]byte(data[i:i+16]))
			}
			if meta.Sequence.Stream >= last.Sequence {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("intake of partition %d: no entry within %s", k, intakeScanWait)
		}
	}
	return nil
}
