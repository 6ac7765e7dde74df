package rssprobe_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/stages"
	shttp "github.com/sluicehq/sluice/stages/http"
	"github.com/sluicehq/sluice/stages/internal/stagetest"
)

func rssKB() (rss, hwm int) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			fmt.Sscan(strings.TrimPrefix(l, "VmRSS:"), &rss)
		}
		if strings.HasPrefix(l, "VmHWM:") {
			fmt.Sscan(strings.TrimPrefix(l, "VmHWM:"), &hwm)
		}
	}
	return
}

func TestRSS(t *testing.T) {
	stagetest.Register = shttp.Register
	const addr = "127.0.0.1:18931"
	src := stagetest.NewSource(t, "http", map[string]any{"listen": addr}, stages.Info{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			m, err := src.Read(ctx)
			if err != nil {
				return
			}
			m.Ack(nil)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	r0, _ := rssKB()
	body := make([]byte, 1_000_000-1000)
	for i := range body {
		body[i] = ' '
	}
	body[0] = '['
	status := make(chan string, 300)
	for range 300 {
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				status <- err.Error()
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
			c.Write(body)
			b := make([]byte, 64)
			c.SetReadDeadline(time.Now().Add(90 * time.Second))
			n, _ := io.ReadAtLeast(c, b, 12)
			status <- string(b[:min(n, 12)])
		}()
	}
	peak := r0
	for i := 0; i < 40; i++ {
		time.Sleep(250 * time.Millisecond)
		r, _ := rssKB()
		peak = max(peak, r)
	}
	_, hwm := rssKB()
	counts := map[string]int{}
	for len(status) > 0 {
		counts[<-status]++
	}
	t.Logf("RSS before %d MB, peak while 300 slow clients hold ~1 MB bodies %d MB (VmHWM %d MB); answered within 10s: %v", r0/1024, peak/1024, hwm/1024, counts)
}
