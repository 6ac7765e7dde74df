// Package kvbucket is what the stage types that keep state in NATS KV
// buckets (dedupe and rate_limit in package state, the kv sink and the
// kv_watch source in package nats) share.
package kvbucket

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/errtext"
)

// SetupTimeout bounds what a constructor does on NATS (opening or
// creating a bucket): constructors get no context.
const SetupTimeout = 30 * time.Second

// MaxKeyLen is the longest key the kv sink writes: a key is part of a
// NATS subject, and the server bounds a message's control line.
const MaxKeyLen = 1024

// JetStream returns the JetStream API on the pipeline's connection, or
// an error wrapping [stages.ErrNoConn] naming the stage type.
func JetStream(info stages.Info, typ string, opts ...jetstream.JetStreamOpt) (jetstream.JetStream, error) {
	if info.Conn == nil {
		return nil, fmt.Errorf("%s: %w: the stage keeps its state in NATS and runs only in a pipeline (Info.Conn is nil)", typ, stages.ErrNoConn)
	}
	js, err := jetstream.New(info.Conn, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	return js, nil
}

// Replicas returns the copies a bucket a stage creates keeps.
func Replicas(info stages.Info) int { return max(info.Replicas, 1) }

// Open opens the bucket of cfg, creating it with cfg if it does not
// exist. An existing bucket is used as it is.
func Open(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
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

// CheckBucketName validates the value of a bucket parameter.
func CheckBucketName(param, name string) error {
	if name == "" {
		return stages.ParamErrorf(param, "must not be empty")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return stages.ParamErrorf(param, "a bucket name has only letters, digits, '_' and '-' (got %q)", name)
		}
	}
	return nil
}

// CheckKey reports why key is not a key a KV bucket accepts: tokens
// separated by '.', each made of letters, digits and "-/_=".
func CheckKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("key %s is %d bytes long, more than %d", QuoteKey(key), len(key), MaxKeyLen)
	}
	prev := byte('.')
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '/', c == '_', c == '=':
		case c == '.':
			if prev == '.' {
				return fmt.Errorf("key %s has an empty token: a key does not start or end with '.' nor hold \"..\"", QuoteKey(key))
			}
		default:
			return fmt.Errorf("key %s has %q at byte %d: a key holds only letters, digits, '.', '-', '/', '_' and '='", QuoteKey(key), rune(c), i)
		}
		prev = c
	}
	if prev == '.' {
		return fmt.Errorf("key %s has an empty token: a key does not start or end with '.' nor hold \"..\"", QuoteKey(key))
	}
	return nil
}

// QuoteKey quotes a key for an error message, cut to 64 bytes.
func QuoteKey(key string) string {
	if len(key) > 64 {
		return strconv.Quote(key[:64]) + "…"
	}
	return strconv.Quote(key)
}

// KeyString turns the result of a key expression into a key: a string
// as it is, an integer in decimal, another number as strconv writes it.
func KeyString(v any) (string, error) {
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
	return "", fmt.Errorf("the key expression gave a %s, want a string or a number", errtext.JSONKind(v))
}
