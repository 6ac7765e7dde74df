package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/stages"
)

// Conformance cases of the NATS family: the nats and jetstream sources and
// sinks, each on a server of its own (given by url) or, for the jetstream
// sink, the pipeline's.
//
// The sources are unbounded: feed publishes once the run has started.
// What a source reads is bytes passed on as they are, so the only bad
// input is a message larger than the pipeline's server takes: the source
// servers have a max_payload of 4 MiB, the pipeline's 1 MiB.
func init() {
	conformanceCases = append(conformanceCases,
		conformanceCase{stages.RoleSource, "nats", func(t *testing.T, e *conformanceEnv) conformanceStage {
			up := natstest.ServerMaxPayload(t, 4<<20)
			client := natstest.Connect(t, up) // before the run: its goroutines are not the run's
			// The first request starts the goroutine that takes the
			// answers to every request of the connection: start it now.
			_, _ = client.Request("prime.nobody", nil, time.Second)
			records := []string{`{"n":1}`, `{"n":2}`, tooLargeForThePipeline, `{"n":3}`}
			return conformanceStage{
				with:    `{subject: 'in.>', url: '` + up.ClientURL() + `'}`,
				want:    3,
				wantBad: 1,
				feed: func(ctx context.Context, t *testing.T) error {
					// Requests: each is answered once its record is stored
					// or dead-lettered. Until the source has subscribed,
					// there is no responder.
					for _, r := range records {
						var resp *nats.Msg
						var err error
						natstest.WaitFor(t, time.Minute, "the source to answer", func() bool {
							resp, err = client.RequestWithContext(ctx, "in.x", []byte(r))
							return !errors.Is(err, nats.ErrNoResponders)
						})
						if err != nil {
							return err
						}
						var answer struct {
							OK bool `json:"ok"`
						}
						if err := json.Unmarshal(resp.Data, &answer); err != nil {
							return err
						}
						code := resp.Header.Get("Nats-Service-Error-Code")
						if bad := r == tooLargeForThePipeline; answer.OK == bad || (bad && code != "400") {
							t.Errorf("answer to a record of %d bytes: %s, code %q", len(r), resp.Data, code)
						}
					}
					return nil
				},
			}
		}},
		conformanceCase{stages.RoleSource, "jetstream", func(t *testing.T, e *conformanceEnv) conformanceStage {
			up := natstest.ServerMaxPayload(t, 4<<20)
			nc := natstest.Connect(t, up)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "UP", Subjects: []string{"up.>"}})
			if err != nil {
				t.Fatal(err)
			}
			records := []string{`{"n":1}`, tooLargeForThePipeline, `{"n":2}`, `{"n":3}`}
			return conformanceStage{
				with:    `{stream: UP, durable: sluice, url: '` + up.ClientURL() + `'}`,
				want:    3,
				wantBad: 1,
				feed: func(ctx context.Context, t *testing.T) error {
					for _, r := range records {
						if _, err := js.Publish(ctx, "up.x", []byte(r)); err != nil {
							return err
						}
					}
					return nil
				},
				check: func(t *testing.T, _ []string) {
					// Every upstream message is settled: acked, or
					// terminated for the dead letter.
					natstest.WaitFor(t, 10*time.Second, "every upstream message settled", func() bool {
						c, err := st.Consumer(context.Background(), "sluice")
						if err != nil {
							return false
						}
						info, err := c.Info(context.Background())
						return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.Delivered.Stream == uint64(len(records))
					})
				},
			}
		}},
		conformanceCase{stages.RoleSink, "nats", func(t *testing.T, e *conformanceEnv) conformanceStage {
			target := natstest.ServerMaxPayload(t, 1024)
			client := natstest.Connect(t, target)
			sub, err := client.SubscribeSync("out.>")
			if err == nil {
				err = client.Flush()
			}
			if err != nil {
				t.Fatal(err)
			}
			return conformanceStage{
				with: `{subject: 'out.{kind}', url: '` + target.ClientURL() + `'}`,
				good: []string{`{"kind":"a","n":1}`, `{"kind":"b","n":2}`},
				// No field for the subject; too large for the target.
				bad: []string{`{"n":3}`, `{"kind":"c","pad":"` + strings.Repeat("x", 2000) + `"}`},
				check: func(t *testing.T, _ []string) {
					var subjects []string
					for range 2 {
						m, err := sub.NextMsg(10 * time.Second)
						if err != nil {
							t.Fatal(err)
						}
						subjects = append(subjects, m.Subject)
					}
					slices.Sort(subjects)
					if !slices.Equal(subjects, []string{"out.a", "out.b"}) {
						t.Errorf("published on %v", subjects)
					}
				},
			}
		}},
		conformanceCase{stages.RoleSink, "jetstream", func(t *testing.T, e *conformanceEnv) conformanceStage {
			js, err := jetstream.New(e.nc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.>"}, MaxMsgSize: 512}); err != nil {
				t.Fatal(err)
			}
			return conformanceStage{
				with: `{stream: OUT, subject: 'out.{kind}'}`,
				good: []string{`{"kind":"a","n":1}`, `{"kind":"b","n":2}`},
				// No field for the subject; too large for the stream.
				bad: []string{`{"n":3}`, `{"kind":"c","pad":"` + strings.Repeat("x", 600) + `"}`},
				check: func(t *testing.T, _ []string) {
					stored := natstest.StreamMessages(t, e.nc, "OUT")
					if len(stored) != 2 {
						t.Fatalf("stored %d messages, want 2", len(stored))
					}
					for _, m := range stored {
						if id := m.Header.Get(stages.HeaderMsgID); !strings.HasPrefix(id, "conformance/") {
							t.Errorf("message on %s stored with id %q", m.Subject, id)
						}
					}
				},
			}
		}},
	)
}

// tooLargeForThePipeline is a record larger than the pipeline's server
// (max_payload 1 MiB) takes, and smaller than the sources' servers do.
var tooLargeForThePipeline = `{"pad":"` + strings.Repeat("x", 1100<<10) + `"}`

// conformanceServer starts a nats-server with JetStream on a random
// loopback port whose max_payload is maxPayload bytes, shut down when the
