package pipetest

import (
	"context"
	"io"
	"sync"

	"github.com/sluicehq/sluice/stages"
)

// Type names of the stages a case puts in the pipeline's place.
const (
	inputType   = "test_input"
	captureType = "test_capture"
)

// inputSpec returns the spec of a source that reads msgs and ends.
func inputSpec(msgs []Message) *stages.Spec {
	return &stages.Spec{
		Name:    inputType,
		Summary: "the records of a test case",
		NewSource: func(stages.Params, stages.Info) (stages.Source, error) {
			return &inputSource{msgs: msgs}, nil
		},
	}
}

// inputSource reads the records of a case, then ends.
type inputSource struct {
	msgs []Message
	next int
}

var _ stages.Source = (*inputSource)(nil)

func (s *inputSource) Read(ctx context.Context) (*stages.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.next >= len(s.msgs) {
		return nil, io.EOF
	}
	in := s.msgs[s.next]
	s.next++
	b, err := stages.EncodeJSON(in.Record)
	if err != nil {
		return nil, stages.Permanent(err)
	}
	m := stages.NewMessage(b)
	if in.EventTime != "" {
		m.Header = stages.Header{stages.HeaderEventTime: {in.EventTime}}
	}
	return m, nil
}

func (s *inputSource) Close(context.Context) error { return nil }

// capture holds what a capture sink received: each record once (a
// redelivered copy, known by its Nats-Msg-Id, is dropped), as canonical
// JSON.
type capture struct {
	mu      sync.Mutex
	seen    map[string]bool
	records []string
}

func newCapture() *capture { return &capture{seen: make(map[string]bool)} }

// got returns the records received so far.
func (c *capture) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.records...)
}

// captureSpec returns the spec of a sink that keeps what it receives in c.
func captureSpec(c *capture) *stages.Spec {
	return &stages.Spec{
		Name:    captureType,
		Summary: "keeps what it receives for a test case",
		NewSink: func(stages.Params, stages.Info) (stages.Sink, error) {
			return &captureSink{c: c}, nil
		},
	}
}

type captureSink struct{ c *capture }

var _ stages.Sink = (*captureSink)(nil)

func (s *captureSink) Write(_ context.Context, batch []*stages.Message) error {
	recs := make([]string, 0, len(batch))
	ids := make([]string, 0, len(batch))
	for _, m := range batch {
		b, err := m.Payload()
		if err != nil {
			return stages.Permanent(err)
		}
		recs = append(recs, canonicalBytes(b))
		ids = append(ids, m.Header.Get(stages.HeaderMsgID))
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for i, r := range recs {
		if id := ids[i]; id != "" {
			if s.c.seen[id] {
				continue
			}
			s.c.seen[id] = true
		}
		s.c.records = append(s.c.records, r)
	}
	return nil
}

func (s *captureSink) Close(context.Context) error { return nil }
