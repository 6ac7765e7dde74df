package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/natstest"
	"github.com/sluicehq/sluice/runner"
)

// orderedRecords is the size of the partition order test's job.
const orderedRecords = 20_000

const orderedPipeline = `name: ordered
settings: {ack_wait: 3s}
stages:
  - name: gen
    source: generate
    with: {count: %d, rate: 4000, template: '{"user": seq %% 50, "n": seq}'}
    key: user
    partitions: 8
  - name: out
    sink: jetstream
    with: {stream: ORDERED_OUT, url: %q}
`

// TestPartitionOrderWithWorkerKilled runs a keyed pipeline of 8
// partitions on four `sluice worker` processes, kills one of them with
// kill -9 mid-run, and checks that the sink received every record, each
// user's in order: the partitions of the killed worker are taken over and
// resume after its unacknowledged records, without inversions.
func TestPartitionOrderWithWorkerKilled(t *testing.T) {
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
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERED_OUT", Subjects: []string{"ordered.out"}, Duplicates: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, dir, "ordered.yaml", fmt.Sprintf(orderedPipeline, orderedRecords, url))

	var workers []*workerProc
	for i := range 4 {
		workers = append(workers, startWorkerProc(t, bin, dir, url, fmt.Sprintf("w%d", i+1)))
	}
	sluiceCmd(t, bin, "deploy", "--nats", url, p)
	natstest.WaitFor(t, time.Minute, "a quarter of the output", func() bool {
		return streamCount(t, js, "ORDERED_OUT") > orderedRecords/4
	})
	// w4 is the last to join: the least likely to run the source, whose
	// takeover is tested elsewhere.
	if err := workers[3].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed w4 at %d records out", streamCount(t, js, "ORDERED_OUT"))
	natstest.WaitFor(t, 2*time.Minute, "the run to finish", func() bool {
		out, err := trySluice(bin, "status", "--json", "--nats", url, "ordered")
		if err != nil {
			return false
		}
		var st runner.ClusterStatus
		return json.Unmarshal([]byte(out), &st) == nil && len(st.Pipelines) == 1 && st.Pipelines[0].RunState == "finished"
	})

	msgs := natstest.StreamMessages(t, nc, "ORDERED_OUT")
	seen := make(map[int64]bool, orderedRecords)
	last := make(map[int64]int64)
	inversions := 0
	for _, m := range msgs {
		var r struct{ User, N int64 }
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("%s: %v", m.Data, err)
		}
		if seen[r.N] {
			t.Errorf("record %d stored twice", r.N)
		}
		seen[r.N] = true
		if prev, ok := last[r.User]; ok && r.N < prev {
			if inversions++; inversions <= 5 {
				t.Errorf("user %d: record %d after %d", r.User, r.N, prev)
			}
		}
		last[r.User] = r.N
	}
	if len(seen) != orderedRecords || inversions > 0 {
		t.Errorf("%d distinct records of %d, %d inversions", len(seen), orderedRecords, inversions)
	}
	taken := 0
	for _, w := range workers[:3] {
		if strings.Contains(w.stderr.String(), "partition taken over") {
			taken++
		}
	}
	t.Logf("%d of the other workers took a partition of w4's over", taken)
}
