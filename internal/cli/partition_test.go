package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/internal/natstest"
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
	job := startWorkerJob(t, "ordered", "ORDERED_OUT", 4, func(url string) string {
		return fmt.Sprintf(orderedPipeline, orderedRecords, url)
	})
	natstest.WaitFor(t, time.Minute, "a quarter of the output", func() bool {
		return streamCount(t, job.js, "ORDERED_OUT") > orderedRecords/4
	})
	// w4 is the last to join: the least likely to run the source, whose
	// takeover is tested elsewhere.
	if err := job.workers[3].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed w4 at %d records out", streamCount(t, job.js, "ORDERED_OUT"))
	job.waitFinished(t)

	msgs := natstest.StreamMessages(t, job.nc, "ORDERED_OUT")
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
	for _, w := range job.workers[:3] {
		if strings.Contains(w.stderr.String(), "partition taken over") {
			taken++
		}
	}
	t.Logf("%d of the other workers took a partition of w4's over", taken)
}

// workerJob is a pipeline deployed to `sluice worker` processes on a
// server of the test's, whose sink writes to a stream of the test's.
type workerJob struct {
	bin, url, name string
	nc             *nats.Conn
	js             jetstream.JetStream
	workers        []*workerProc
}

// startWorkerJob starts a server, creates the output stream (subject the
// stream's name in lower case with '_' as '.'), starts n workers w1..wn
// and deploys pipeline name, whose YAML spec gives for the server's URL.
func startWorkerJob(t *testing.T, name, stream string, n int, spec func(url string) string) *workerJob {
	t.Helper()
	j := &workerJob{bin: buildSluice(t), name: name}
	dir := t.TempDir()
	srv := natstest.Server(t)
	j.url, j.nc = srv.ClientURL(), natstest.Connect(t, srv)
	var err error
	if j.js, err = jetstream.New(j.nc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subject := strings.ReplaceAll(strings.ToLower(stream), "_", ".")
	if _, err := j.js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject}, Duplicates: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, dir, name+".yaml", spec(j.url))
	for i := range n {
		j.workers = append(j.workers, startWorkerProc(t, j.bin, dir, j.url, fmt.Sprintf("w%d", i+1)))
	}
	sluiceCmd(t, j.bin, "deploy", "--nats", j.url, p)
	return j
}

// waitFinished waits until the status says the job's run finished.
func (j *workerJob) waitFinished(t *testing.T) {
	t.Helper()
	natstest.WaitFor(t, 2*time.Minute, "the run to finish", func() bool {
		out, err := trySluice(j.bin, "status", "--json", "--nats", j.url, j.name)
		if err != nil {
			return false
		}
		var st cluster.StatusReport
		return json.Unmarshal([]byte(out), &st) == nil && len(st.Pipelines) == 1 && st.Pipelines[0].RunState == "finished"
	})
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
