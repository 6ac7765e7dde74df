package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/runner"
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
	bin := buildSluice(t)
	dir := t.TempDir()
	srv := natstest.Server(t)
	url := srv.ClientURL()
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WINDOWED_OUT", Subjects: []string{"windowed.out"}, Duplicates: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, dir, "windowed.yaml", fmt.Sprintf(windowPipeline, windowRecords, url))
	var workers []*workerProc
	for i := range 3 {
		workers = append(workers, startWorkerProc(t, bin, dir, url, fmt.Sprintf("w%d", i+1)))
	}
	sluiceCmd(t, bin, "deploy", "--nats", url, p)
	const windows = windowRecords / 100 * 20
	natstest.WaitFor(t, time.Minute, "a quarter of the windows", func() bool {
		return streamCount(t, js, "WINDOWED_OUT") > windows/4
	})
	if err := workers[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed w3 at %d windows out", streamCount(t, js, "WINDOWED_OUT"))
	natstest.WaitFor(t, 2*time.Minute, "the run to finish", func() bool {
		out, err := trySluice(bin, "status", "--json", "--nats", url, "windowed")
		if err != nil {
			return false
		}
		var st runner.ClusterStatus
		return json.Unmarshal([]byte(out), &st) == nil && len(st.Pipelines) == 1 && st.Pipelines[0].RunState == "finished"
	})

	type result struct{ N, Total float64 }
	final := map[string]result{}
	msgs := natstest.StreamMessages(t, nc, "WINDOWED_OUT")
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

// streamCount returns how many messages stream holds.
func streamCount(t *testing.T, js jetstream.JetStream, stream string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	str, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return int(str.CachedInfo().State.Msgs)
}
