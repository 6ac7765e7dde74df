package lease

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/internal/schema"
)

func TestLease(t *testing.T) {
	nc := natstest.Connect(t, natstest.Server(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ttl = time.Second
	kv, err := schema.EnsureBucket(ctx, js, schema.Bucket(schema.LeasesBucket, 1, ttl))
	if err != nil {
		t.Fatal(err)
	}
	a, b := schema.LeaseHolder{Worker: "a"}, schema.LeaseHolder{Worker: "b"}

	la, ok, err := Acquire(ctx, kv, ttl, "k", a)
	if err != nil || !ok {
		t.Fatalf("first acquire: %v, %v", ok, err)
	}
	if _, ok, err := Acquire(ctx, kv, ttl, "k", b); err != nil || ok {
		t.Fatalf("acquire of a held lease: %v, %v; want refused", ok, err)
	}

	// Kept, the lease outlives its TTL; b cannot take it meanwhile.
	keepCtx, stopKeeping := context.WithCancel(ctx)
	lost := make(chan struct{})
	kept := make(chan struct{})
	go func() { defer close(kept); la.Keep(keepCtx, func() { close(lost) }) }()
	deadline := time.Now().Add(3 * ttl)
	for time.Now().Before(deadline) {
		if _, ok, _ := Acquire(ctx, kv, ttl, "k", b); ok {
			t.Fatal("b took a lease that was being renewed")
		}
		time.Sleep(ttl / 4) // pace of the attempts, not a synchronisation
	}

	// Someone else's write means the lease is lost: keep says so.
	if _, err := kv.Put(ctx, "k", []byte(`{"worker":"c"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(5 * ttl):
		t.Fatal("keep did not notice the lease was lost")
	}
	stopKeeping()
	<-kept

	// Not renewed, it expires and b takes it.
	natstest.WaitFor(t, 5*ttl, "the lease to expire", func() bool {
		lb, ok, err := Acquire(ctx, kv, ttl, "k", b)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			if err := lb.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return ok
	})
	// Released, it can be taken at once.
	if _, ok, err := Acquire(ctx, kv, ttl, "k", a); err != nil || !ok {
		t.Fatalf("acquire after release: %v, %v", ok, err)
	}
}
