package state

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

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
	kv, err := js.KeyValue(ctx, RateLimitBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bucket %s: %w", RateLimitBucket, err)
	}
	keys, err := kv.ListKeysFiltered(ctx, keyPart(name)+".*")
	if err != nil {
		return fmt.Errorf("bucket %s: %w", RateLimitBucket, err)
	}
	for k := range keys.Keys() {
		if err := kv.Purge(ctx, k); err != nil {
			return fmt.Errorf("bucket %s: purge %s: %w", RateLimitBucket, k, err)
		}
	}
	return nil
}
