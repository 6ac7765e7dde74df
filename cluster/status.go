package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
)

// StatusReport is what [Status] reports: the live workers and the
// deployed pipelines.
type StatusReport struct {
	Workers   []WorkerInfo     `json:"workers"`
	Pipelines []PipelineStatus `json:"pipelines"`
}

// PipelineStatus is the state of one deployed pipeline.
type PipelineStatus struct {
	Deployment *Deployment   `json:"deployment"`
	RunState   string        `json:"run_state"` // running, finished or interrupted
	Stages     []StageStatus `json:"stages"`
	Errors     []string      `json:"errors,omitempty"` // what workers report they could not start, "worker: error"
}

// StageStatus is the state of one stage of a deployed pipeline, from its
// consumers, the dead-letter stream and the workers' heartbeats.
type StageStatus struct {
	DeployedStage
	Workers     []string `json:"workers"`      // the workers running it (a source: its owner)
	Standby     []string `json:"standby"`      // the workers standing by to take it over
	Pending     uint64   `json:"pending"`      // messages in its input streams not yet delivered to it
	AckPending  uint64   `json:"ack_pending"`  // delivered, not yet acknowledged
	Redelivered uint64   `json:"redelivered"`  // delivered more than once, not yet acknowledged
	DeadLetters uint64   `json:"dead_letters"` // its messages in the dead-letter stream
	Rate        float64  `json:"rate"`         // messages (a source: records) per second over the last minute, all workers together
	// In, Out and Errors are what the workers running it took in,
	// published (a sink: wrote) and failed on (retried attempts) in their
	// current run, all workers together.
	In     uint64 `json:"in"`
	Out    uint64 `json:"out"`
	Errors uint64 `json:"errors"`
	// Held lists the workers where the stage is held now by a destination
	// that is down, since when and by what error.
	Held []StageHold `json:"held,omitempty"`
	// Unknown says why the counts of messages are not known now (a
	// consumer whose leader is being elected), empty when they are.
	Unknown string `json:"unknown,omitempty"`
	// Fused tells that the stage runs fused with the stage after it (a
	// local run: see pipeline.Pipeline.Chains): its outputs go there in
	// memory, not through its stream.
	Fused bool `json:"fused,omitempty"`
}

// StageHold is a stage held on a worker by a destination that is down:
// it keeps its records and takes no new ones until it is back.
type StageHold struct {
	Worker string    `json:"worker"`
	Since  time.Time `json:"since"`
	Error  string    `json:"error"` // the destination's error, without the user names and passwords of URLs
}

// Status reports the live workers and the deployed pipelines, or only
// pipeline name if it is not empty (ErrNotDeployed if it is not deployed).
func Status(ctx context.Context, nc *nats.Conn, name string) (*StatusReport, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	deps, err := Deployments(ctx, nc)
	if err != nil {
		return nil, err
	}
	if name != "" {
		deps = slices.DeleteFunc(deps, func(d *Deployment) bool { return d.Name != name })
		if len(deps) == 0 {
			return nil, fmt.Errorf("%w: %s", ErrNotDeployed, name)
		}
	}
	ws, err := liveWorkers(ctx, js)
	if err != nil {
		return nil, err
	}
	st := &StatusReport{Workers: ws}
	for _, d := range deps {
		ps, err := pipelineStatus(ctx, js, d, ws)
		if err != nil {
			return nil, fmt.Errorf("pipeline %q: %w", d.Name, err)
		}
		st.Pipelines = append(st.Pipelines, ps)
	}
	return st, nil
}

// liveWorkers returns the workers whose heartbeat has not expired, by id.
func liveWorkers(ctx context.Context, js jetstream.JetStream) ([]WorkerInfo, error) {
	kv, err := js.KeyValue(ctx, schema.WorkersBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []WorkerInfo
	for k := range keys.Keys() {
		w, found, err := schema.GetJSON[WorkerInfo](ctx, kv, k)
		if err != nil {
			return nil, fmt.Errorf("worker %s: %w", k, err)
		}
		if found {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b WorkerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func pipelineStatus(ctx context.Context, js jetstream.JetStream, d *Deployment, ws []WorkerInfo) (PipelineStatus, error) {
	ps := PipelineStatus{Deployment: d, RunState: schema.RunRunning}
	if kv, err := js.KeyValue(ctx, schema.StateBucket); err == nil {
		rec, found, err := schema.GetJSON[schema.RunRecord](ctx, kv, schema.RunKey(d.Name))
		if err != nil {
			return ps, err
		}
		if found && rec.Run == d.Run {
			ps.RunState = rec.State
		}
	}
	dead := map[string]uint64{}
	dlq, err := js.Stream(ctx, schema.DLQStreamName(d.Name))
	var info *jetstream.StreamInfo
	if err == nil {
		info, err = dlq.Info(ctx, jetstream.WithSubjectFilter(schema.DLQSubjects(d.Name)[0]))
	}
	switch {
	case err == nil:
		for subj, n := range info.State.Subjects {
			dead[subj] = n
		}
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		ps.Errors = append(ps.Errors, fmt.Sprintf("dead letters not counted: %v", err))
	}
	for _, s := range d.Stages {
		ss := StageStatus{DeployedStage: s, DeadLetters: dead[schema.DLQSubject(d.Name, s.Name)]}
		consumers := []string{schema.ConsumerName(s.Name)}
		if s.InputPartitions > 0 {
			consumers = consumers[:0]
			for k := range s.InputPartitions {
				consumers = append(consumers, schema.PartitionConsumerName(s.Name, k))
			}
		}
		for _, u := range s.Inputs {
			for _, name := range consumers {
				c, err := js.Consumer(ctx, schema.StreamName(d.Name, u), name)
				var info *jetstream.ConsumerInfo
				if err == nil {
					info, err = c.Info(ctx)
				}
				if err != nil {
					ss.Unknown = fmt.Sprintf("consumer %s on %s: %v", name, schema.StreamName(d.Name, u), err)
					continue
				}
				ss.Pending += info.NumPending
				ss.AckPending += uint64(info.NumAckPending)
				ss.Redelivered += uint64(info.NumRedelivered)
			}
		}
		for _, w := range ws {
			for _, wp := range w.Pipelines {
				if wp.Name != d.Name {
					continue
				}
				for _, st := range wp.Stages {
					if st.Name != s.Name {
						continue
					}
					ss.Rate += st.Rate
					ss.In, ss.Out, ss.Errors = ss.In+st.In, ss.Out+st.Out, ss.Errors+st.Errors
					switch st.State {
					case StageRunning:
						ss.Workers = append(ss.Workers, w.ID)
					case StageHeld:
						ss.Workers = append(ss.Workers, w.ID)
						ss.Held = append(ss.Held, StageHold{Worker: w.ID, Since: st.HeldSince, Error: st.HeldBy})
					case StageStandby:
						ss.Standby = append(ss.Standby, w.ID)
					case StageFailed:
						ps.Errors = append(ps.Errors, fmt.Sprintf("%s: stage %q: %s", w.ID, s.Name, st.Error))
					}
				}
			}
		}
		ps.Stages = append(ps.Stages, ss)
	}
	for _, w := range ws {
		for _, wp := range w.Pipelines {
			if wp.Name == d.Name && wp.Error != "" {
				// A refused pipeline's problems come one per line.
				for line := range strings.Lines(wp.Error) {
					ps.Errors = append(ps.Errors, w.ID+": "+strings.TrimSuffix(line, "\n"))
				}
			}
		}
	}
	return ps, nil
}
