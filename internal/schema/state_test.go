package schema

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/stages"
)

// TestKeys pins the KV keys and bucket names: changing one strands the
// runs, checkpoints and leases of every pipeline on NATS.
func TestKeys(t *testing.T) {
	const p, s = "orders-etl", "read"
	for _, tt := range []struct{ got, want string }{
		{StateBucket, "sluice_state"},
		{PipelinesBucket, "sluice_pipelines"},
		{WorkersBucket, "sluice_workers"},
		{LeasesBucket, "sluice_leases"},
		{RunKey(p), "run.orders-etl"},
		{CheckpointKey(p, s), "source.orders-etl.read"},
		{CheckpointKey(p, "*"), "source.orders-etl.*"},
		{CountsKey(p, s, "w1"), "counts.orders-etl.read.w1"},
		{CountsKey(p, "*", "*"), "counts.orders-etl.*.*"},
		{PartitionLeasePrefix(p, s), "partition.orders-etl.read."},
		{MemberLeasePrefix(p, s), "member.orders-etl.read."},
		{RunRunning + RunFinished + RunInterrupted, "runningfinishedinterrupted"},
		{StageRunning + StageStandby + StageDone + StageFailed, "runningstandbydonefailed"},
		{StageHeld, "held"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestHeaders pins the headers sluice puts on messages: the stage API
// (package stages) names them, and they are read back from what is
// stored (dead letters, replays).
func TestHeaders(t *testing.T) {
	got := []string{stages.HeaderMsgID, stages.HeaderKey, stages.HeaderEventTime, stages.HeaderOrigin, stages.HeaderError,
		stages.HeaderStage, stages.HeaderDeliveries, stages.HeaderSubject, stages.HeaderInputID, stages.HeaderTruncated,
		stages.HeaderWatermark, stages.HeaderControl, stages.HeaderRedelivered, stages.HeaderObject}
	want := []string{"Nats-Msg-Id", "Sluice-Key", "Sluice-Event-Time", "Sluice-Origin", "Sluice-Error",
		"Sluice-Stage", "Sluice-Deliveries", "Sluice-Subject", "Sluice-Input-Id", "Sluice-Truncated",
		"Sluice-Watermark", "Sluice-Control", "Sluice-Redelivered", "Sluice-Object"}
	if !slices.Equal(got, want) {
		t.Errorf("headers %q, want %q", got, want)
	}
}

// TestRecords pins the JSON of every record stored on NATS: processes of
// another version, and the data already stored, read them.
func TestRecords(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		v    any
		want string
	}{
		{"run record", RunRecord{Run: 3, State: RunInterrupted}, `{"run":3,"state":"interrupted"}`},
		{"checkpoint", Checkpoint{Run: 3, Records: 10, Position: []byte(`{"line":10}`), Done: true},
			`{"run":3,"records":10,"position":"eyJsaW5lIjoxMH0=","done":true}`},
		{"checkpoint, not done", Checkpoint{Run: 1, Records: 2}, `{"run":1,"records":2}`},
		{"lease", LeaseHolder{Worker: "w1", Host: "h", PID: 7, Since: at},
			`{"worker":"w1","host":"h","pid":7,"since":"2026-12-01T10:00:00Z"}`},
		{"deployment", Deployment{Name: "p", Version: 2, Run: 1, File: "p.yaml", Spec: "name: p", Deployed: at, Host: "h", Revision: 9,
			Stages:   []DeployedStage{{Name: "w", Type: "file", Role: stages.RoleSink, Inputs: []string{"r"}, InputPartitions: 4}},
			Settings: DeployedSettings{Replicas: 3}},
			`{"name":"p","version":2,"run":1,"file":"p.yaml","spec":"name: p","stages":[{"name":"w","type":"file","role":"sink","inputs":["r"],"input_partitions":4}],"deployed":"2026-12-01T10:00:00Z","host":"h","settings":{"replicas":3}}`},
		{"worker heartbeat", WorkerInfo{ID: "w1", Host: "h", PID: 7, Started: at, Seen: at, Stages: []string{"p.*"},
			Pipelines: []WorkerPipeline{{Name: "p", Version: 2, Run: 1, Error: "e", Stages: []WorkerStage{{Name: "w", State: StageRunning, In: 5, Rate: 1.5, Out: 4, Errors: 1, Error: "x"}}}}},
			`{"id":"w1","host":"h","pid":7,"started":"2026-12-01T10:00:00Z","seen":"2026-12-01T10:00:00Z","stages":["p.*"],"pipelines":[{"name":"p","version":2,"run":1,"error":"e","stages":[{"name":"w","state":"running","in":5,"rate":1.5,"out":4,"errors":1,"error":"x"}]}]}`},
		{"worker heartbeat, a held stage", WorkerInfo{ID: "w1", Host: "h", PID: 7, Started: at, Seen: at,
			Pipelines: []WorkerPipeline{{Name: "p", Version: 2, Run: 1, Stages: []WorkerStage{{Name: "w", State: StageHeld, In: 5, HeldSince: at, HeldBy: "refused"}}}}},
			`{"id":"w1","host":"h","pid":7,"started":"2026-12-01T10:00:00Z","seen":"2026-12-01T10:00:00Z","pipelines":[{"name":"p","version":2,"run":1,"stages":[{"name":"w","state":"held","in":5,"rate":0,"held_since":"2026-12-01T10:00:00Z","held_by":"refused"}]}]}`},
	} {
		b, err := json.Marshal(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, b, tt.want)
		}
	}
}

// TestBuckets pins how the control buckets are configured.
func TestBuckets(t *testing.T) {
	for _, tt := range []struct {
		name    string
		ttl     time.Duration
		history uint8
		desc    string
	}{
		{PipelinesBucket, 0, 5, "sluice deployed pipelines"},
		{WorkersBucket, 10 * time.Second, 1, "sluice worker heartbeats"},
		{LeasesBucket, 10 * time.Second, 1, "sluice source owners"},
		{StateBucket, 0, 1, "sluice run records and checkpoints"},
	} {
		cfg := Bucket(tt.name, 3, tt.ttl)
		want := jetstream.KeyValueConfig{Bucket: tt.name, Description: tt.desc, Storage: jetstream.FileStorage, History: tt.history, TTL: tt.ttl, Replicas: 3}
		if cfg.Bucket != want.Bucket || cfg.Description != want.Description || cfg.Storage != want.Storage ||
			cfg.History != want.History || cfg.TTL != want.TTL || cfg.Replicas != want.Replicas {
			t.Errorf("Bucket(%s) = %+v, want %+v", tt.name, cfg, want)
		}
	}
}
