package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// tapOptions are the flags of tap.
type tapOptions struct {
	n       int
	follow  bool
	raw     bool
	headers bool
	// local is set when tap reads a local run through its endpoint: the
	// run closing the connection is its end, not a failure.
	local bool
}

func (a *app) tapCmd() *cobra.Command {
	var o tapOptions
	cmd := &cobra.Command{
		Use:   "tap PIPELINE STAGE",
		Short: "Print the records a stage outputs, as they come, without disturbing the pipeline",
		Long: `Tap prints the records that stage STAGE of pipeline PIPELINE publishes from now
on, one JSON line each: the next -n records, then it ends, or with --follow
every record until it is interrupted (or the local run it reads ends). A record that is not JSON is printed as
a JSON string; --raw prints the payloads as they are, one a line; --headers
wraps each record in an object with its subject, its stream sequence and its
headers: {"subject": ..., "seq": ..., "headers": {...}, "record": ...}.

Tap reads the stage's output stream through an ephemeral ordered consumer of
its own that acknowledges nothing: the stage's durable consumers, their
acknowledgements and the pipeline's results are untouched. It skips the
watermark ticks and end markers that travel with the records, and the dead
letters replayed to a stage, and prints a record stored twice (a publish
retried after its deduplication window) once. A sink has no output stream:
tap the stage it reads.

Without --nats (or SLUICE_NATS_URL), tap reads the "sluice run" that holds
the store (--store-dir), through the private endpoint it records there; with
--nats, the cluster behind it.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("tap: want a pipeline and a stage (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.n < 1 && !o.follow {
				return fmt.Errorf("tap: -n must be >= 1 (got %d)", o.n)
			}
			return a.withRun(cmd.Context(), func(ctx context.Context, c *conn) error {
				o.local = c.local != nil
				if o.local {
					if err := checkTappable(ctx, c, args[0], args[1]); err != nil {
						return failure(err)
					}
				}
				return failure(tap(ctx, c.nc, args[0], args[1], o, a.stdout))
			})
		},
	}
	cmd.Flags().IntVarP(&o.n, "n", "n", 10, "print this many records, then end (without --follow)")
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "print every record until interrupted")
	cmd.Flags().BoolVar(&o.raw, "raw", false, "print the payloads as they are, one a line")
	cmd.Flags().BoolVar(&o.headers, "headers", false, "print each record with its subject, stream sequence and headers")
	return cmd
}

// checkTappable refuses to tap stage s of pipeline p of a local run when
// the stage runs fused with the stage after it: its records do not pass
// through its stream.
func checkTappable(ctx context.Context, c *conn, p, s string) error {
	st, err := status(ctx, c, p)
	if err != nil {
		return err
	}
	for _, ps := range st.Pipelines {
		for _, ss := range ps.Stages {
			if ps.Deployment.Name == p && ss.Name == s && ss.Fused {
				return fmt.Errorf("tap: stage %s of pipeline %s runs fused with the stage after it, so its records do not pass through a stream: give the stage after it \"buffer: durable\", or the pipeline \"settings: {fusion: off}\", to tap it", s, p)
			}
		}
	}
	return nil
}

// tapInactive is how long the server keeps tap's consumer once tap has
// stopped reading it.
const tapInactive = 5 * time.Second

// tapSeen is how many message IDs tap remembers, in each of its two
// generations, to print a record stored twice once.
const tapSeen = 1 << 16

// tap prints the records stage s of pipeline p publishes from now on to
// w, as o says, until it has printed o.n (unless o.follow) or ctx ends.
func tap(ctx context.Context, nc *nats.Conn, p, s string, o tapOptions, w io.Writer) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream := schema.StreamName(p, s)
	if _, err := js.Stream(ctx, stream); errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("tap: pipeline %s has no output stream for stage %s: the pipeline has not run, it has no such stage, or the stage is a sink (tap the stage it reads)", p, s)
	} else if err != nil {
		return fmt.Errorf("tap: stream %s: %w", stream, err)
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: schema.StreamSubjects(p, s),
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		// On an interest stream the consumer keeps what it was not
		// given yet: let the server remove it soon after tap is gone.
		InactiveThreshold: tapInactive,
	})
	if err != nil {
		return fmt.Errorf("tap: consumer on %s: %w", stream, err)
	}
	defer func() {
		// Removed at once, so that it holds nothing back on an
		// interest stream; the inactive threshold covers a tap killed.
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tapInactive)
			defer cancel()
			_ = js.DeleteConsumer(dctx, stream, info.Name)
		}
	}()
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("tap: consumer on %s: %w", stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()

	out := bufio.NewWriter(w)
	defer out.Flush()
	replays := schema.ReplayPrefix(p, s)
	seen, older := make(map[string]struct{}), make(map[string]struct{})
	for printed := 0; o.follow || printed < o.n; {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted
			}
			if nc.IsClosed() && o.local {
				return nil // the local run ended
			}
			if nc.IsClosed() {
				return fmt.Errorf("tap: the connection to NATS has closed (a local run that ended closes it): %w", err)
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("tap: %w", err)
		}
		h := m.Headers()
		if h.Get(stages.HeaderControl) != "" || strings.HasPrefix(m.Subject(), replays) {
			continue
		}
		if id := h.Get(stages.HeaderMsgID); id != "" {
			_, again := seen[id]
			if _, old := older[id]; again || old {
				continue
			}
			if len(seen) >= tapSeen {
				seen, older = make(map[string]struct{}), seen
			}
			seen[id] = struct{}{}
		}
		if err := writeTapped(out, m, o); err != nil {
			return err
		}
		printed++
		if o.follow {
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// tapped is a record as tap --headers prints it.
type tapped struct {
	Subject string              `json:"subject"`
	Seq     uint64              `json:"seq"`
	Headers map[string][]string `json:"headers,omitempty"`
	Record  json.RawMessage     `json:"record"`
}

// writeTapped writes m to w as o says.
func writeTapped(w *bufio.Writer, m jetstream.Msg, o tapOptions) error {
	data := m.Data()
	if o.raw {
		w.Write(data)
		return w.WriteByte('\n')
	}
	rec := recordJSON(data)
	if !o.headers {
		w.Write(rec)
		return w.WriteByte('\n')
	}
	t := tapped{Subject: m.Subject(), Headers: m.Headers(), Record: rec}
	if meta, err := m.Metadata(); err == nil {
		t.Seq = meta.Sequence.Stream
	}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	w.Write(b)
	return w.WriteByte('\n')
}

// recordJSON returns data as one line of JSON: compacted if it is JSON,
// else as a JSON string.
func recordJSON(data []byte) json.RawMessage {
	var b bytes.Buffer
	if json.Valid(data) && json.Compact(&b, data) == nil {
		return b.Bytes()
	}
	s, _ := json.Marshal(string(data)) // invalid UTF-8 becomes U+FFFD
	return s
}
