package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"testing"
	"time"
)

func TestTmpStall(t *testing.T) {
	s := session(t, 200000)
	for i := range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		sh := shape{storage: "memory", replicas: 1, n: 200000}
		stallHook = func() {
			fmt.Println("STALL, dumping")
			for _, n := range []string{} { _ = n }
			ci, err := s.js.Consumer(context.Background(), stallStream, "hop")
			if err == nil {
				info, _ := ci.Info(context.Background())
				fmt.Printf("consumer: pending %d ackpending %d waiting %d delivered %+v ackfloor %+v redelivered %d\n", info.NumPending, info.NumAckPending, info.NumWaiting, info.Delivered, info.AckFloor, info.NumRedelivered)
			}
			pprof.Lookup("goroutine").WriteTo(os.Stdout, 1)
		}
		start := time.Now()
		smp, err := s.baselineHop(ctx, sh, false)
		cancel()
		if err != nil {
			t.Fatalf("iteration %d after %s: %v", i, time.Since(start), err)
		}
		fmt.Println(i, smp.rate(sh.n))
	}
}
