package cli

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
)

// windowRecords is the size of the window failover test's job: 10
// records per second of event time, 20 users, 10 s windows, so each
// window of each user holds 5 records.
const windowRecords = 20_000

const windowPipeline = `name: windowed
settings: {ack_wait: 3s}
stages:
  - name: gen
    source: generate
    with: {count: %d, rate: 4000, template: '{"user": seq %% 20, "n": seq, "ts": 1700000000 + seq / 10}'}
    event_time: ts
    key: user
    partitions: 4
  - name: counts
    transform: window
    with: {type: tumbling, size: 10s, key: user, aggregate: {n: count, total: 'sum(n)'}}
  - name: out
    sink: jetstream
    with: {stream: WINDOWED_OUT, url: %q}
`

// TestWindowWorkerKilled runs a tumbling window on three `sluice worker`
// processes, kills one with kill -9 mid-run, and checks that the final
// aggregate of every window (the last one emitted for each key and
// window) is what an uninterrupted run gives, worked out from the
// generator: window i of user u holds records 100i+u+20j, j < 5.
func TestWindowWorkerKilled(t *testing.T) {
	job := startWorkerJob(t, "windowed", "WINDOWED_OUT", 3, func(url string) string {
		return fmt.Sprintf(windowPipeline, windowRecords, url)
	})
	const windows = windowRecords / 100 * 20
	natstest.WaitFor(t, time.Minute, "a quarter of the windows", func() bool {
		return streamCount(t, job.js, "WINDOWED_OUT") > windows/4
	})
	if err := job.workers[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed w3 at %d windows out", streamCount(t, job.js, "WINDOWED_OUT"))
	job.waitFinished(t)

	type result struct{ N, Total float64 }
	final := map[string]result{}
	msgs := natstest.StreamMessages(t, job.nc, "WINDOWED_OUT")
	for _, m := range msgs {
		var r struct {
			Key         float64 `json:"key"`
			WindowStart string  `json:"window_start"`
			N, Total    float64
		}
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("%s: %v", m.Data, err)
		}
		final[fmt.Sprintf("%v/%s", r.Key, r.WindowStart)] = result{r.N, r.Total}
	}
	if len(final) != windows {
		t.Errorf("%d windows, want %d", len(final), windows)
	}
	bad := 0
	for i := range windowRecords / 100 {
		start := time.Unix(1700000000+int64(10*i), 0).UTC().Format(time.RFC3339Nano)
		for u := range 20 {
			want := result{5, float64(500*i + 5*u + 200)}
			if got := final[fmt.Sprintf("%d/%s", u, start)]; got != want {
				if bad++; bad <= 5 {
					t.Errorf("user %d, window %s: got %+v, want %+v", u, start, got, want)
				}
			}
		}
	}
	t.Logf("%d window records for %d windows", len(msgs), windows)
}
