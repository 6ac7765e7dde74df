package dlq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/stages"
)

// Whole returns the whole payload of dl: its Data, or, for a dead letter
// whose payload was too large for NATS (Truncated), the payload the engine
// kept whole in the pipeline's object store.
func Whole(ctx context.Context, nc *nats.Conn, dl DeadLetter) ([]byte, error) {
	if dl.Object == "" {
		return dl.Data, nil
	}
	bucket, name, ok := strings.Cut(dl.Object, "/")
	if !ok {
		return nil, fmt.Errorf("dead letter %d: object %q: want BUCKET/NAME", dl.Seq, dl.Object)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	obs, err := js.ObjectStore(ctx, bucket)
	if err == nil {
		var data []byte
		if data, err = obs.GetBytes(ctx, name); err == nil {
			return data, nil
		}
	}
	return nil, fmt.Errorf("dead letter %d: whole payload %s: %w", dl.Seq, dl.Object, err)
}

// deleteWhole deletes, from pipeline p's object store, the whole payloads
// of dead letters whose object names match.
func deleteWhole(ctx context.Context, js jetstream.JetStream, p string, match func(name string) bool) error {
	obs, err := js.ObjectStore(ctx, schema.OversizedBucket(p))
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, info := range infos {
		if match(info.Name) {
			if err := obs.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// objectName returns the object name part of a dead letter's HeaderObject.
func objectName(h nats.Header) string {
	_, name, _ := strings.Cut(h.Get(stages.HeaderObject), "/")
	return name
}
