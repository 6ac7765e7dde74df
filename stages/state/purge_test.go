package state

import (
	"slices"
	"testing"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// PurgeState deletes the dedupe buckets and rate_limit keys of one
// pipeline's stages, and nothing of another pipeline's or a bucket the
// user named.
func TestPurgeState(t *testing.T) {
	base, js := stagetest.NATSInfo(t)
	srvConn := base.Conn
	for _, pipe := range []string{"p", "p-x", "q"} {
		info := stages.Info{Pipeline: pipe, Stage: "s", Conn: srvConn}
		stagetest.NewInfoTransform(t, "dedupe", map[string]any{"key": "id"}, info)
		stagetest.NewInfoTransform(t, "rate_limit", map[string]any{"rate": 10}, info)
	}
	stagetest.NewInfoTransform(t, "dedupe", map[string]any{"key": "id", "bucket": "mine"}, stages.Info{Pipeline: "p", Stage: "t", Conn: srvConn})
	ctx := stagetest.Context(t)
	limits, err := js.KeyValue(ctx, RateLimitBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"p.s", "p-x.s", "q.s"} {
		if _, err := limits.Put(ctx, k, []byte("0")); err != nil {
			t.Fatal(err)
		}
	}

	if err := PurgeState(ctx, js, "p"); err != nil {
		t.Fatal(err)
	}
	var buckets []string
	lister := js.KeyValueStoreNames(ctx)
	for b := range lister.Name() {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	if want := []string{"mine", "sluice_dedupe_p-x_s", "sluice_dedupe_q_s", RateLimitBucket}; !slices.Equal(buckets, want) {
		t.Errorf("buckets left: %q, want %q", buckets, want)
	}
	keys, err := limits.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if want := []string{"p-x.s", "q.s"}; !slices.Equal(keys, want) {
		t.Errorf("rate_limit keys left: %q, want %q", keys, want)
	}
}
