package stages

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// What the stage types that keep state in NATS KV buckets (dedupe,
// rate_limit, the kv sink and the kv_watch source) share.

// kvSetupTimeout bounds what a constructor does on NATS (opening or
// creating a bucket): constructors get no context.
const kvSetupTimeout = 30 * time.Second

// maxKVKeyLen is the longest key the kv sink writes: a key is part of a
// NATS subject, and the server bounds a message's control line.
const maxKVKeyLen = 1024

// jetStreamOf returns the JetStream API on the pipeline's connection, or
// an error wrapping [ErrNoConn] naming the stage type.
func jetStreamOf(info Info, typ string, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	if info.Conn == nil {
		return nil, fmt.Errorf("%s: %w: the stage keeps its state in NATS and runs only in a pipeline (Info.Conn is nil)", typ, ErrNoConn)
	}
	js, err := jetstream.New(info.Conn, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	return js, nil
}

// replicasOf returns the copies a bucket a stage creates keeps.
func replicasOf(info Info) int { return max(info.Replicas, 1) }

// openBucket opens the bucket of cfg, creating it with cfg if it does not
// exist. An existing bucket is used as it is.
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another worker created it meanwhile, differently.
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// checkBucketName validates the value of a bucket parameter.
func checkBucketName(param, name string) error {
	if name == "" {
		return paramError(param, "must not be empty")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return paramError(param, "a bucket name has only letters, digits, '_' and '-' (got %q)", name)
		}
	}
	return nil
}

// checkKVKey reports why key is not a key a KV bucket accepts: tokens
// separated by '.', each made of letters, digits and "-/_=".
func checkKVKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if len(key) > maxKVKeyLen {
		return fmt.Errorf("key %s is %d bytes long, more than %d", quoteKey(key), len(key), maxKVKeyLen)
	}
	prev := byte('.')
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '/', c == '_', c == '=':
		case c == '.':
			if prev == '.' {
				return fmt.Errorf("key %s has an empty token: a key does not start or end with '.' nor hold \"..\"", quoteKey(key))
			}
		default:
			return fmt.Errorf("key %s has %q at byte %d: a key holds only letters, digits, '.', '-', '/', '_' and '='", quoteKey(key), rune(c), i)
		}
		prev = c
	}
	if prev == '.' {
		return fmt.Errorf("key %s has an empty token: a key does not start or end with '.' nor hold \"..\"", quoteKey(key))
	}
	return nil
}

// quoteKey quotes a key for an error message, cut to 64 bytes.
func quoteKey(key string) string {
	if len(key) > 64 {
		return strconv.Quote(key[:64]) + "…"
	}
	return strconv.Quote(key)
}

// kvKeyString turns the result of a key expression into a key: a string
// as it is, an integer in decimal, another number as strconv writes it.
func kvKeyString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), nil
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case nil:
		return "", errors.New("the key expression gave null (is the field missing?)")
	}
	return "", fmt.Errorf("the key expression gave a %s, want a string or a number", jsonKind(v))
}

// PurgeState deletes what the built-in stage types keep in NATS for the
// stages of pipeline name under the names they choose themselves: the
// dedupe stages' default buckets (sluice_dedupe_PIPELINE_*) and the
// rate_limit stages' keys (PIPELINE.* in sluice_rate_limit). A bucket a
// stage was given with its bucket parameter stays, unless its name has
// the form of a default one.
// `sluice undeploy --purge` calls it.
func PurgeState(ctx context.Context, js jetstream.JetStream, name string) error {
	prefix := "sluice_dedupe_" + bucketPart(name) + "_"
	lister := js.KeyValueStoreNames(ctx)
	var buckets []string
	for b := range lister.Name() {
		if strings.HasPrefix(b, prefix) {
			buckets = append(buckets, b)
		}
	}
	if err := lister.Error(); err != nil {
		return fmt.Errorf("list buckets: %w", err)
	}
	for _, b := range buckets {
		if err := js.DeleteKeyValue(ctx, b); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			return fmt.Errorf("delete bucket %s: %w", b, err)
		}
	}
	kv, err := js.KeyValue(ctx, rateLimitBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bucket %s: %w", rateLimitBucket, err)
	}
	keys, err := kv.ListKeysFiltered(ctx, keyPart(name)+".*")
	if err != nil {
		return fmt.Errorf("bucket %s: %w", rateLimitBucket, err)
	}
	for k := range keys.Keys() {
		if err := kv.Purge(ctx, k); err != nil {
			return fmt.Errorf("bucket %s: purge %s: %w", rateLimitBucket, k, err)
		}
	}
	return nil
}
