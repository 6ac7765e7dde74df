package state

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

// Two workers of one stage, as two instances on one server, together stay
// within the rate: over the first second they pass at most about
// rate + burst records (the bound is rate*T + 2*burst over any window;
// the first window has no tokens taken before it). The limit asserted is
// generous, and only an upper one: a slow machine passes fewer.
func TestRateLimitShared(t *testing.T) {
	info, _ := stagetest.NATSInfo(t)
	const rate, burst = 40, 4
	raw := map[string]any{"rate": rate, "burst": burst}
	a := stagetest.NewInfoTransform(t, "rate_limit", raw, info)
	b := stagetest.NewInfoTransform(t, "rate_limit", raw, info)
	other := info
	other.Stage = "other" // another stage has a limit of its own
	c := stagetest.NewInfoTransform(t, "rate_limit", raw, other)

	start := time.Now()
	window := start.Add(time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), window)
	defer cancel()
	var passed, passedOther atomic.Int64
	var wg sync.WaitGroup
	for tr, n := range map[stages.Transform]*atomic.Int64{a: &passed, b: &passed, c: &passedOther} {
		wg.Go(func() {
			for {
				in := stages.NewMessage([]byte(`{}`))
				out, err := tr.Process(ctx, in, nil)
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Error(err)
					}
					return
				}
				if len(out) != 1 || out[0] != in {
					t.Errorf("got %d outputs, want the input", len(out))
					return
				}
				if time.Now().Before(window) {
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("passed in the first second: %d by two workers, %d by the other stage", passed.Load(), passedOther.Load())
	limit := int64(rate*1.5 + burst)
	if got := passed.Load(); got > limit || got == 0 {
		t.Errorf("two workers passed %d records in the first second, want 1..%d", got, limit)
	}
	if got := passedOther.Load(); got > limit || got == 0 {
		t.Errorf("the other stage passed %d records in the first second, want 1..%d", got, limit)
	}
}

// A record waits for its token as long as its context allows.
func TestRateLimitWaitsWithContext(t *testing.T) {
	info, _ := stagetest.NATSInfo(t)
	tr := stagetest.NewInfoTransform(t, "rate_limit", map[string]any{"rate": 0.01, "burst": 1}, info)
	if out, err := tr.Process(stagetest.Context(t), stages.NewMessage([]byte(`{}`)), nil); err != nil || len(out) != 1 {
		t.Fatalf("the first record: %d outputs, %v", len(out), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	out, err := tr.Process(ctx, stages.NewMessage([]byte(`{}`)), nil)
	if !errors.Is(err, context.DeadlineExceeded) || len(out) != 0 {
		t.Fatalf("the second record at 1 per 100s: %d outputs, %v; want the context's error", len(out), err)
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Process(stagetest.Context(t), stages.NewMessage([]byte(`{}`)), nil); err == nil {
		t.Fatal("Process after Close succeeded")
	}
}
