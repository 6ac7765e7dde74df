package cli

import (
	"context"
	"log/slog"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/bytesize"
)

// heapCheckEvery is how often the live heap is compared with the memory
// limit.
const heapCheckEvery = 10 * time.Second

// tuneMemory applies gc_percent and memory_limit to this process and, when
// there is a limit, watches the live heap until the returned stop is
// called: a live heap near the limit makes the collector run all the time,
// which the operator is told, once for each quarter more it grows. stop
// waits for the watcher to end.
func (a *app) tuneMemory() (stop func()) {
	s := a.settings
	gc := s.ApplyGC()
	limit, from := s.ApplyMemoryLimit()
	if limit < 0 {
		a.log.Debug("memory", "gc_percent", gc, "memory_limit", "off", "from", from)
		return func() {}
	}
	a.log.Debug("memory", "gc_percent", gc, "memory_limit", bytesize.MiB(limit), "from", from)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { watchHeap(ctx, a.log, limit, from) })
	return func() {
		cancel()
		wg.Wait()
	}
}

// watchHeap warns on log when the live heap passes heapWarnAt of limit,
// until ctx ends.
func watchHeap(ctx context.Context, log *slog.Logger, limit int64, from string) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(heapCheckEvery)
	defer t.Stop()
	var warned int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		live := int64(sample[0].Value.Uint64())
		if !heapWarning(live, limit, warned) {
			continue
		}
		warned = live
		log.Warn("the live heap is near the memory limit: the garbage collector runs often and the pipeline slows down; "+
			"memory grows with the message rate × dedup_window, the buffers and the batch sizes (docs/architecture.md, Memory): "+
			"raise memory_limit or lower dedup_window",
			"live", bytesize.MiB(live), "memory_limit", bytesize.MiB(limit), "from", from)
	}
}

// heapWarning reports whether a live heap of live bytes, against a limit
// of limit, deserves a warning when one was last given at warned bytes (0:
// none yet): from three quarters of the limit, and again each time it has
// grown by a quarter since.
func heapWarning(live, limit, warned int64) bool {
	if live < limit/4*3 {
		return false
	}
	return warned == 0 || live >= warned+warned/4
}
