package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
	"github.com/sluicehq/sluice/stages/internal/kvbucket"
)

const defaultDedupeTTL = time.Hour

// minDedupeTTL is the shortest ttl: the server refuses a bucket whose
// entries expire sooner than 100ms, and a shorter memory is no use.
const minDedupeTTL = time.Second

func dedupeSpec() stages.Spec {
	return stages.Spec{
		Name:    "dedupe",
		Summary: "Drop the records whose key was seen before, across workers, processes and restarts",
		Doc: `Evaluates key over each record (fields as top-level names, msg as the ` +
			`metadata). The first record of a key passes on untouched; another ` +
			`record with the same key within ttl is dropped and counted as ` +
			`filtered. Keys are remembered in a NATS KV bucket, by default ` +
			`sluice_dedupe_PIPELINE_STAGE, created with a max age of ttl and as ` +
			`many copies as the pipeline's streams: the filter holds across every ` +
			`worker of the stage in every process, and across restarts. An ` +
			`entry is the SHA-256 of the key's JSON encoding, so any value is a ` +
			`key (the string "1" and the number 1 are two keys). Two workers ` +
			`racing on one key create its entry atomically: exactly one of the ` +
			`records passes.

Guarantee: each key passes once per ttl, and a record that passed is ` +
			`never lost to its own entry. The entry holds the identity of the ` +
			`input that created it: its Nats-Msg-Id, which the runner derives ` +
			`from where the record came from (else its stream and sequence). A ` +
			`redelivery of that input, after a worker died before the output ` +
			`was acknowledged or from a dead-letter replay, passes again, and ` +
			`its output carries the same Nats-Msg-Id, so the next stream drops ` +
			`the copy if the first one was stored within the pipeline's ` +
			`dedup_window. A key ` +
			`is forgotten ttl after the record that created its entry (not ` +
			`after the last duplicate): a copy arriving later passes again. ` +
			`The ttl is the bucket's max age; the stage sets it on an existing ` +
			`bucket, so stages sharing a bucket must give the same ttl.

A record whose key expression fails or gives null (a missing field) ` +
			`goes to the dead-letter stream; a NATS error is retried. Each ` +
			`record costs one KV round trip, a duplicate three.

Example:

    - name: once
      transform: dedupe
      with:
        key: order_id
        ttl: 24h`,
		Params: []stages.Param{
			{Name: "key", Type: stages.TypeExpr, Required: true, Doc: "Expression giving the identity of a record, such as id or [customer, order]."},
			{Name: "ttl", Type: stages.TypeDuration, Default: defaultDedupeTTL, Doc: "How long a key is remembered after the record that first had it passed (at least 1s)."},
			{Name: "bucket", Type: stages.TypeString, Doc: "The KV bucket that remembers the keys; default sluice_dedupe_PIPELINE_STAGE."},
		},
		Check:        checkDedupe,
		NewTransform: newDedupeTransform,
	}
}

func checkDedupe(p stages.Params) error {
	if d := p.Duration("ttl"); p.Has("ttl") && d < minDedupeTTL {
		return stages.ParamErrorf("ttl", "must be at least %s (got %s)", minDedupeTTL, d)
	}
	if p.Has("bucket") {
		return kvbucket.CheckBucketName("bucket", p.String("bucket"))
	}
	return nil
}

// dedupeTransform passes the first record of each key, remembering keys in
// a KV bucket.
type dedupeTransform struct {
	key    *stages.Expr
	kv     jetstream.KeyValue
	closed bool
}

var _ stages.Transform = (*dedupeTransform)(nil)

func newDedupeTransform(p stages.Params, info stages.Info) (stages.Transform, error) {
	if err := checkDedupe(p); err != nil {
		return nil, err
	}
	key, err := stages.CompileParam(p, "key")
	if err != nil {
		return nil, err
	}
	js, err := kvbucket.JetStream(info, "dedupe")
	if err != nil {
		return nil, err
	}
	ttl := p.Duration("ttl")
	if ttl == 0 {
		ttl = defaultDedupeTTL
	}
	bucket := p.String("bucket")
	if bucket == "" {
		bucket = dedupeBucket(info.Pipeline, info.Stage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvbucket.SetupTimeout)
	defer cancel()
	kv, err := kvbucket.Open(ctx, js, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: fmt.Sprintf("sluice dedupe keys of stage %s of pipeline %s", info.Stage, info.Pipeline),
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    kvbucket.Replicas(info),
	})
	if err == nil {
		err = setBucketTTL(ctx, js, kv, ttl)
	}
	if err != nil {
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	return &dedupeTransform{key: key, kv: kv}, nil
}

// dedupeBucket returns the default bucket of a dedupe stage. Pipeline and
// stage names hold no '_', so the name is unambiguous.
func dedupeBucket(pipeline, stage string) string {
	return "sluice_dedupe_" + bucketPart(pipeline) + "_" + bucketPart(stage)
}

// bucketPart makes s fit in a bucket name: characters other than letters,
// digits, '-' and '_' become '_'; empty becomes "_".
func bucketPart(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			return c
		}
		return '_'
	}, s)
}

// setBucketTTL makes ttl the max age of the entries of kv, if it is not.
func setBucketTTL(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, ttl time.Duration) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", kv.Bucket(), err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || st.TTL() == ttl {
		return nil
	}
	cfg := bs.StreamInfo().Config
	cfg.MaxAge = ttl
	cfg.Duplicates = min(cfg.Duplicates, ttl)
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("bucket %s: set ttl to %s: %w", kv.Bucket(), ttl, err)
	}
	return nil
}

// dedupeAttempts bounds how often Process tries again when the entry of a
// key disappears (it expired) between a failed create and the read.
const dedupeAttempts = 3

func (t *dedupeTransform) Process(ctx context.Context, in *stages.Message, out []*stages.Message) ([]*stages.Message, error) {
	if t.closed {
		return out, errors.New("dedupe: transform is closed")
	}
	v, err := t.key.Eval(in)
	if err != nil {
		return out, err
	}
	if v == nil {
		return out, stages.Permanent(fmt.Errorf("dedupe: the key expression %q gave null: the record has no key", errtext.ShortSource(t.key.String())))
	}
	b, err := stages.EncodeJSON(v)
	if err != nil {
		return out, stages.Permanent(fmt.Errorf("dedupe: encode key: %w", err))
	}
	sum := sha256.Sum256(b)
	key := hex.EncodeToString(sum[:])
	id := inputIdentity(in)
	for range dedupeAttempts {
		_, err := t.kv.Create(ctx, key, []byte(id))
		if err == nil {
			return append(out, in), nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return out, fmt.Errorf("dedupe: remember key: %w", err)
		}
		e, err := t.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // expired since: create it again
		}
		if err != nil {
			return out, fmt.Errorf("dedupe: read key: %w", err)
		}
		if id != "" && string(e.Value()) == id {
			return append(out, in), nil // a redelivery of the input that passed
		}
		return out, nil
	}
	return out, fmt.Errorf("dedupe: the entry of a key expired %d times while read", dedupeAttempts)
}

// inputIdentity returns what names input m across redeliveries: its
// Nats-Msg-Id without the suffixes a dead-letter replay adds
// ("/replayN"), else its stream and sequence, else "".
func inputIdentity(m *stages.Message) string {
	if id := m.Header.Get(stages.HeaderMsgID); id != "" {
		for {
			i := strings.LastIndex(id, "/replay")
			if i <= 0 {
				break
			}
			if _, err := strconv.ParseUint(id[i+len("/replay"):], 10, 64); err != nil {
				break
			}
			id = id[:i]
		}
		return id
	}
	if m.Meta.Stream != "" {
		return m.Meta.Stream + ":" + strconv.FormatUint(m.Meta.Sequence, 10)
	}
	return ""
}

func (t *dedupeTransform) Close(context.Context) error {
	t.closed = true
	return nil
}
