package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/kvbucket"
)

const (
	deletesEmit = "emit"
	deletesSkip = "skip"
)

// The op field of a kv_watch record.
const (
	kvOpPut    = "put"
	kvOpDelete = "delete"
)

func kvWatchSpec() stages.Spec {
	return stages.Spec{
		Name:    "kv_watch",
		Summary: "Read the changes of the keys of a NATS KV bucket as they happen",
		Doc: `Watches the keys of bucket that match keys and yields one record per ` +
			`change: {"key": ..., "value": ..., "revision": ..., "op": "put"}. The ` +
			`value is the stored value decoded as JSON if it is JSON, else the ` +
			`string it holds. A deleted or purged key (or one the server ` +
			`removed, in a bucket with limit markers) gives op "delete" and a ` +
			`null value, unless deletes is skip. Each record carries the key as ` +
			`Sluice-Key and the time of the change as Sluice-Event-Time. By ` +
			`default the source starts with the latest value of every matching ` +
			`key, then follows the changes; include_history starts with every ` +
			`value the bucket still holds, updates_only with the first change ` +
			`after the start. The source runs until the pipeline is stopped. The ` +
			`bucket is created if missing, as the kv sink creates it.

A value that is neither JSON nor UTF-8 text cannot be a record: it goes ` +
			`to the dead-letter stream as it is.

The source reads the bucket's stream (KV_BUCKET) with an ordered ` +
			`consumer, which it makes again after the last revision read when ` +
			`it misses a message or its server goes away. It checkpoints the ` +
			`revision of the last change read; a resumed run watches from the ` +
			`revision after it, history included, so every change made meanwhile ` +
			`is read, in order, as far as the bucket still holds it (a bucket ` +
			`that keeps one value per key holds only the latest value of a key ` +
			`changed twice). The Nats-Msg-Id of a record derives from the bucket ` +
			`and the revision: a change read again after a crash, within the ` +
			`pipeline's dedup_window, is stored once.

Example:

    - name: changes
      source: kv_watch
      with:
        bucket: customers
        keys: customer.>`,
		Params: []stages.Param{
			{Name: "bucket", Type: stages.TypeString, Required: true, Doc: "The KV bucket to watch; created if missing."},
			{Name: "keys", Type: stages.TypeStringList, Default: []string{">"}, Doc: "Key patterns to watch, with the wildcards of NATS subjects (* for one token, > for the rest)."},
			{Name: "include_history", Type: stages.TypeBool, Default: false, Doc: "Start with every value the bucket holds for the matching keys, oldest first, not only the latest."},
			{Name: "updates_only", Type: stages.TypeBool, Default: false, Doc: "Skip the current values: yield only the changes made after the source started."},
			{Name: "deletes", Type: stages.TypeString, Default: deletesEmit, Enum: []string{deletesEmit, deletesSkip}, Doc: "emit yields a record with op \"delete\" for a deleted or purged key; skip leaves them out."},
		},
		Check:     checkKVWatch,
		NewSource: newKVWatchSource,
	}
}

func checkKVWatch(p stages.Params) error {
	if err := kvbucket.CheckBucketName("bucket", p.String("bucket")); err != nil {
		return err
	}
	if p.Has("keys") {
		keys := p.Strings("keys")
		if len(keys) == 0 {
			return stages.ParamErrorf("keys", "must name at least one key pattern")
		}
		for _, k := range keys {
			if err := checkKeyPattern(k); err != nil {
				return stages.ParamErrorf("keys", "%s", err)
			}
		}
	}
	if p.Bool("include_history") && p.Bool("updates_only") {
		return stages.ParamErrorf("updates_only", "cannot be used with include_history")
	}
	return nil
}

// checkKeyPattern validates a key pattern: a key whose tokens may be the
// wildcards * or, last, >.
func checkKeyPattern(pattern string) error {
	tokens := splitTokens(pattern)
	for i, tok := range tokens {
		switch {
		case tok == "*":
		case tok == ">":
			if i != len(tokens)-1 {
				return fmt.Errorf("pattern %q has > before its last token", pattern)
			}
		default:
			if err := kvbucket.CheckKey(tok); err != nil || tok == "" {
				return fmt.Errorf("pattern %q: token %q is not a key token", pattern, tok)
			}
		}
	}
	return nil
}

func splitTokens(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// kvWatchSource yields the changes of a bucket, read with an ordered
// consumer on the bucket's stream: the consumer is recreated from the
// last revision read whenever it misses a message or its server, and a
// Read that waits is cut short by its context.
type kvWatchSource struct {
	js       jetstream.JetStream
	bucket   string
	keys     []string
	history  bool
	updates  bool
	skipDels bool

	iter   jetstream.MessagesContext // nil until the first Read
	last   uint64                    // revision of the last change read; 0 for none
	resume uint64                    // revision to start at, 0 to start as configured
	closed bool
}

var _ stages.Resumable = (*kvWatchSource)(nil)

func newKVWatchSource(p stages.Params, info stages.Info) (stages.Source, error) {
	if err := checkKVWatch(p); err != nil {
		return nil, err
	}
	js, err := kvbucket.JetStream(info, "kv_watch")
	if err != nil {
		return nil, err
	}
	bucket := p.String("bucket")
	ctx, cancel := context.WithTimeout(context.Background(), kvbucket.SetupTimeout)
	defer cancel()
	if _, err := kvbucket.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket:   bucket,
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: kvbucket.Replicas(info),
	}); err != nil {
		return nil, fmt.Errorf("kv_watch: %w", err)
	}
	keys := p.Strings("keys")
	if len(keys) == 0 {
		keys = []string{">"}
	}
	return &kvWatchSource{
		js:       js,
		bucket:   bucket,
		keys:     keys,
		history:  p.Bool("include_history"),
		updates:  p.Bool("updates_only"),
		skipDels: p.String("deletes") == deletesSkip,
	}, nil
}

// KV protocol: the stream of a bucket, the subjects of its keys, and the
// headers of a delete.
const (
	kvStreamPrefix    = "KV_"
	kvSubjectPrefix   = "$KV."
	kvOperationHeader = "KV-Operation"
	kvMarkerHeader    = "Nats-Marker-Reason" // a key removed by the server
)

// start creates the consumer: after the last change read if there is
// one, else at the position Resume gave, else as configured.
func (s *kvWatchSource) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, kvbucket.SetupTimeout)
	defer cancel()
	stream := kvStreamPrefix + s.bucket
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
	switch {
	case s.last > 0:
		s.resume = s.last + 1
	case s.resume > 0:
	case s.history:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case s.updates:
		// From the revision after the latest now, so that a consumer
		// made again later misses nothing that came meanwhile.
		str, err := s.js.Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("kv_watch: watch bucket %s: %w", s.bucket, err)
		}
		s.resume = str.CachedInfo().State.LastSeq + 1
	}
	if s.resume > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, s.resume
	}
	for _, k := range s.keys {
		cfg.FilterSubjects = append(cfg.FilterSubjects, kvSubjectPrefix+s.bucket+"."+k)
	}
	cons, err := s.js.OrderedConsumer(ctx, stream, cfg)
	if err == nil {
		s.iter, err = cons.Messages()
	}
	if err != nil {
		return fmt.Errorf("kv_watch: watch bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Read returns the next change; it waits for one as long as ctx allows.
// When ctx ends the wait, the consumer is stopped (it may be busy being
// made again, which does not heed ctx) and the next Read makes a new one
// after the last change read.
func (s *kvWatchSource) Read(ctx context.Context) (*stages.Message, error) {
	if s.closed {
		return nil, fmt.Errorf("kv_watch: %w", stages.ErrSourceClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.iter == nil {
		if err := s.start(ctx); err != nil {
			return nil, err
		}
	}
	iter := s.iter
	stop := context.AfterFunc(ctx, iter.Stop)
	defer func() {
		if !stop() { // ctx stopped the consumer
			s.iter = nil
		}
	}()
	for {
		jm, err := iter.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("kv_watch: bucket %s: %w", s.bucket, err)
		}
		meta, err := jm.Metadata()
		if err != nil {
			return nil, fmt.Errorf("kv_watch: bucket %s: %w", s.bucket, err)
		}
		del := isKVDelete(jm.Headers())
		if del && s.skipDels {
			continue
		}
		s.last = meta.Sequence.Stream
		return s.message(kvKeyOf(jm.Subject()), jm.Data(), meta.Sequence.Stream, meta.Timestamp, del)
	}
}

// isKVDelete reports whether a message of a bucket's stream is a delete
// or purge marker, of a client or of the server.
func isKVDelete(h stages.Header) bool {
	switch h.Get(kvOperationHeader) {
	case "DEL", "PURGE":
		return true
	}
	return h.Get(kvMarkerHeader) != ""
}

// kvKeyOf returns the key of a subject $KV.BUCKET.KEY.
func kvKeyOf(subject string) string {
	for range 2 {
		i := strings.IndexByte(subject, '.')
		if i < 0 {
			return subject
		}
		subject = subject[i+1:]
	}
	return subject
}

// message turns a change into a record; a value that cannot be a JSON
// value comes with a permanent error.
func (s *kvWatchSource) message(key string, value []byte, rev uint64, at time.Time, del bool) (*stages.Message, error) {
	rec := map[string]any{
		"key":      key,
		"revision": int64(rev),
		"op":       kvOpPut,
		"value":    nil,
	}
	var bad error
	if del {
		rec["op"] = kvOpDelete
	} else {
		v, err := stages.DecodeJSON(value)
		switch {
		case err == nil:
			rec["value"] = v
		case utf8.Valid(value):
			rec["value"] = string(value)
		default:
			bad = stages.Permanent(fmt.Errorf("kv_watch: the value of key %s at revision %d is neither JSON nor UTF-8 text", kvbucket.QuoteKey(key), rev))
		}
	}
	var m *stages.Message
	if bad != nil {
		m = stages.NewMessage(slices.Clone(value))
	} else {
		m = stages.NewValueMessage(rec)
	}
	m.Header = stages.Header{
		stages.HeaderMsgID:     {s.bucket + "/" + strconv.FormatUint(rev, 10)},
		stages.HeaderKey:       {key},
		stages.HeaderEventTime: {at.UTC().Format(time.RFC3339Nano)},
	}
	return m, bad
}

// Checkpoint returns the revision of the last change read.
func (s *kvWatchSource) Checkpoint() ([]byte, error) {
	return strconv.AppendUint(nil, s.last, 10), nil
}

// Resume makes the watch start after the revision a checkpoint gives; 0
// (nothing was read) starts as configured.
func (s *kvWatchSource) Resume(checkpoint []byte) error {
	rev, err := strconv.ParseUint(string(checkpoint), 10, 64)
	if err != nil {
		return fmt.Errorf("kv_watch: checkpoint %q is not a revision", checkpoint)
	}
	if s.iter != nil {
		return errors.New("kv_watch: resume after the watch started")
	}
	s.last = rev
	if rev > 0 {
		s.resume = rev + 1
	}
	return nil
}

// Close stops the consumer.
func (s *kvWatchSource) Close(context.Context) error {
	s.closed = true
	if s.iter != nil {
		s.iter.Stop()
	}
	return nil
}
