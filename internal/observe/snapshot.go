package observe

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/runner"
)

// The states of a pipeline in a [Snapshot].
const (
	SnapshotWaiting = "waiting" // the process is to run it and has not started its stages
	SnapshotRunning = "running" // its stages run in this process
	SnapshotStopped = "stopped" // its run has ended in this process
)

// Snapshot is what GET /api/status answers: every pipeline the process
// runs, as of Time. Its JSON form is the page's contract: fields are
// added, never renamed.
type Snapshot struct {
	Time      time.Time          `json:"time"`
	Pipelines []PipelineSnapshot `json:"pipelines"`
}

// PipelineSnapshot is one pipeline of a [Snapshot]. Run and Stages are
// empty while it waits; once it has stopped, they are what its stages did
// until then, without Pending and AckPending.
type PipelineSnapshot struct {
	Name   string          `json:"name"`
	State  string          `json:"state"`         // SnapshotWaiting, SnapshotRunning or SnapshotStopped
	Run    uint64          `json:"run,omitempty"` // the run number
	Stages []StageSnapshot `json:"stages"`
}

// StageSnapshot is one stage of a [PipelineSnapshot]: what it did in this
// process so far (the counts of [runner.StageSummary]) and what waits for
// it on its inputs.
type StageSnapshot struct {
	Name        string     `json:"name"`
	Type        string     `json:"type"`
	Role        string     `json:"role"`   // source, transform or sink
	Inputs      []InputRef `json:"inputs"` // what it reads; empty for a source
	In          uint64     `json:"in"`
	Out         uint64     `json:"out"`
	Filtered    uint64     `json:"filtered"`
	Errors      uint64     `json:"errors"`
	DeadLetters uint64     `json:"dead_letters"`
	Dropped     uint64     `json:"dropped"`
	// Pending and AckPending are what the server tells of the stage's
	// consumers; absent for a source, or when the server did not answer
	// in time.
	Pending    *uint64 `json:"pending,omitempty"`
	AckPending *uint64 `json:"ack_pending,omitempty"`
	// HeldSeconds is how long destinations that were down held the stage,
	// in Outages outages; Held tells whether one holds it now, since
	// HeldSince, by the error HeldBy (credentials removed).
	HeldSeconds float64    `json:"held_seconds"`
	Outages     uint64     `json:"outages"`
	Held        bool       `json:"held"`
	HeldSince   *time.Time `json:"held_since,omitempty"`
	HeldBy      string     `json:"held_by,omitempty"`
}

// InputRef is an input of a stage: the stage it reads, and the route of
// that stage's output if it reads one.
type InputRef struct {
	Stage string `json:"stage"`
	Route string `json:"route,omitempty"`
}

// pipelineState is a pipeline of the process, with its job if running or
// stopped.
type pipelineState struct {
	name  string
	state string
	job   *runner.Job
}

// all returns every pipeline of the process, in order.
func (js *jobs) all() []pipelineState {
	js.mu.Lock()
	defer js.mu.Unlock()
	out := make([]pipelineState, 0, len(js.order))
	for _, p := range js.order {
		j := js.active[p]
		if j == nil {
			j = js.last[p]
		}
		out = append(out, pipelineState{name: p, state: js.state[p], job: j})
	}
	return out
}

// snapshotState maps the states of jobs to those of a [Snapshot].
func snapshotState(st string) string {
	switch st {
	case stateRunning:
		return SnapshotRunning
	case stateStopped:
		return SnapshotStopped
	}
	return SnapshotWaiting
}

// snapshot reads the counts of every running job, and asks the server for
// each stage's backlog within ctx: a stage whose answer has not come by
// then has no Pending in the snapshot.
func (s *Server) snapshot(ctx context.Context) Snapshot {
	snap := Snapshot{Time: time.Now().UTC(), Pipelines: []PipelineSnapshot{}}
	for _, ps := range s.jobs.all() {
		p := PipelineSnapshot{Name: ps.name, State: snapshotState(ps.state), Stages: []StageSnapshot{}}
		if j := ps.job; j != nil {
			p.Run = j.ID()
			for _, name := range j.Stages() {
				p.Stages = append(p.Stages, s.stageSnapshot(ctx, j, name, ps.state == stateRunning))
			}
		}
		snap.Pipelines = append(snap.Pipelines, p)
	}
	return snap
}

// stageSnapshot returns stage name of j, with its backlog if backlog.
func (s *Server) stageSnapshot(ctx context.Context, j *runner.Job, name string, backlog bool) StageSnapshot {
	sum := j.Stage(name)
	st := StageSnapshot{
		Name:        name,
		Type:        sum.Type,
		Role:        sum.Role.String(),
		Inputs:      []InputRef{},
		In:          sum.In,
		Out:         sum.Out,
		Filtered:    sum.Filtered,
		Errors:      sum.Errors,
		DeadLetters: sum.DeadLetters,
		Dropped:     sum.Dropped,
		HeldSeconds: sum.Held.Seconds(),
		Outages:     sum.Outages,
		Held:        !sum.HeldSince.IsZero(),
		HeldBy:      sum.HeldBy,
	}
	if st.Held {
		since := sum.HeldSince.UTC()
		st.HeldSince = &since
	}
	for _, in := range j.From(name) {
		st.Inputs = append(st.Inputs, InputRef{Stage: in.Stage, Route: in.Route})
	}
	if !backlog || ctx.Err() != nil {
		return st
	}
	b, ok, err := j.Backlog(ctx, name)
	if err != nil {
		s.log.Debug("no backlog for the status", "pipeline", j.Pipeline(), "stage", name, "err", err)
		return st
	}
	if ok {
		st.Pending, st.AckPending = &b.Pending, &b.AckPending
	}
	return st
}

// status answers GET /api/status with the [Snapshot] in JSON.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), scrapeTimeout)
	defer cancel()
	snap := s.snapshot(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(w)
	if err := enc.Encode(snap); err != nil {
		s.log.Debug("status: writing the answer", "err", err)
	}
}
