package runner

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// testMsg is one input message for tests of the worker loop without a
// server: it records how it was answered.
type testMsg struct {
	meta    jetstream.MsgMetadata
	subject string
	data    []byte
	hdr     nats.Header

	mu         sync.Mutex
	acks       int
	naks       int
	nakDelays  []time.Duration
	terms      int
	inProgress int
}

// newTestMsg returns input seq of stream, delivered deliveries times, with
// the Nats-Msg-Id an upstream stage u of pipeline p gives it.
func newTestMsg(stream string, seq, deliveries uint64, data string) *testMsg {
	return &testMsg{
		meta: jetstream.MsgMetadata{
			Sequence:     jetstream.SequencePair{Stream: seq, Consumer: seq},
			NumDelivered: deliveries,
			Stream:       stream,
		},
		subject: "sluice.p.u",
		data:    []byte(data),
		hdr:     nats.Header{stages.HeaderMsgID: []string{"p/u/src/" + strconv.FormatUint(seq, 10)}},
	}
}

func (m *testMsg) Metadata() (*jetstream.MsgMetadata, error) { return &m.meta, nil }
func (m *testMsg) Data() []byte                              { return m.data }
func (m *testMsg) Headers() nats.Header                      { return m.hdr }
func (m *testMsg) Subject() string                           { return m.subject }
func (m *testMsg) Reply() string                             { return "" }
func (m *testMsg) Ack() error                                { m.mu.Lock(); m.acks++; m.mu.Unlock(); return nil }
func (m *testMsg) DoubleAck(context.Context) error           { return m.Ack() }
func (m *testMsg) Nak() error                                { m.mu.Lock(); m.naks++; m.mu.Unlock(); return nil }
func (m *testMsg) NakWithDelay(d time.Duration) error {
	m.mu.Lock()
	m.naks++
	m.nakDelays = append(m.nakDelays, d)
	m.mu.Unlock()
	return nil
}
func (m *testMsg) InProgress() error           { m.mu.Lock(); m.inProgress++; m.mu.Unlock(); return nil }
func (m *testMsg) Term() error                 { m.mu.Lock(); m.terms++; m.mu.Unlock(); return nil }
func (m *testMsg) TermWithReason(string) error { return m.Term() }

// testWorker returns a worker of stage st for tests without a server:
// its step is s, its inputs are partitioned if ordered, and it has no
// watermarks. It must publish nothing.
func testWorker(st *pipeline.Stage, s step, ordered bool) *worker {
	stats := &stageStats{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &worker{
		run:     &run{p: &pipeline.Pipeline{Name: "p"}},
		stage:   st,
		stats:   stats,
		log:     log,
		idBase:  "p/" + st.Name + "/",
		idFanIn: map[string]string{},
		batch:   newBatch(ordered),
		policy:  policy{stage: st, ordered: ordered, stats: stats, log: log},
		step:    s,
	}
}
