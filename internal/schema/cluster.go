package schema

import (
	"time"

	"github.com/sluicehq/sluice/stages"
)

// Deployment is a pipeline deployed to a NATS cluster, as the
// sluice_pipelines bucket keeps it under the pipeline's name. Workers run
// the latest version of each deployed pipeline.
type Deployment struct {
	Name    string `json:"name"`
	Version uint64 `json:"version"` // 1 for the first deploy, then one more per deploy
	// Run is the run the workers carry on: a deploy starts a new run unless
	// the latest one has not finished, which the new version continues.
	Run      uint64          `json:"run"`
	File     string          `json:"file"` // the file deployed, as named to deploy
	Spec     string          `json:"spec"` // its text; each worker interpolates ${VAR} itself
	Stages   []DeployedStage `json:"stages"`
	Deployed time.Time       `json:"deployed"`
	Host     string          `json:"host"` // where deploy ran
	// DeployedBy is the NATS user that deployed it, as the server knows
	// it (see [UserInfoSubject]), else as the deploying client named
	// itself; empty when neither knows. Account is the user's NATS
	// account, empty for the default one.
	DeployedBy string           `json:"deployed_by,omitempty"`
	Account    string           `json:"account,omitempty"`
	Revision   uint64           `json:"-"` // of the bucket entry
	Settings   DeployedSettings `json:"settings"`
}

// UserInfoSubject is where nats-server (2.10 and later, with a system
// account) tells a connection who it is: its user and account.
const UserInfoSubject = "$SYS.REQ.USER.INFO"

// DeployedStage outlines a stage of a deployment, so that status needs
// neither the stage types nor the variables of the spec.
type DeployedStage struct {
	Name   string      `json:"name"`
	Type   string      `json:"type"`
	Role   stages.Role `json:"role"`
	Inputs []string    `json:"inputs,omitempty"` // the stages it reads
	// InputPartitions is the partitions of the stages it reads, 0 if
	// they are not partitioned.
	InputPartitions int `json:"input_partitions,omitempty"`
}

// DeployedSettings are the settings of a deployed pipeline that status
// needs.
type DeployedSettings struct {
	Replicas int `json:"replicas"`
}

// WorkerInfo is what a worker's heartbeat in the sluice_workers bucket
// says about it, under its ID.
type WorkerInfo struct {
	ID        string           `json:"id"`
	Host      string           `json:"host"`
	PID       int              `json:"pid"`
	Started   time.Time        `json:"started"`
	Seen      time.Time        `json:"seen"`
	Stages    []string         `json:"stages,omitempty"` // its --stages patterns
	Pipelines []WorkerPipeline `json:"pipelines,omitempty"`
}

// WorkerPipeline is a pipeline a worker runs.
type WorkerPipeline struct {
	Name    string        `json:"name"`
	Version uint64        `json:"version"`
	Run     uint64        `json:"run"`
	Error   string        `json:"error,omitempty"` // why it could not start, or why its run failed here
	Stages  []WorkerStage `json:"stages,omitempty"`
}

// States of a stage in a worker.
const (
	StageRunning = "running" // processing, or (a source) reading as the owner
	StageStandby = "standby" // waiting to take over: a source another worker owns, a file another sink writes
	StageDone    = "done"    // a source whose run has finished
	StageFailed  = "failed"  // could not start; the worker tries again
	// StageHeld is a running stage held by a destination that is down:
	// it keeps its records and takes no new ones until it is back.
	StageHeld = "held"
)

// WorkerStage is a stage of a pipeline a worker runs.
type WorkerStage struct {
	Name  string  `json:"name"`
	State string  `json:"state"`
	In    uint64  `json:"in"`   // messages (a source: records) taken in by this worker
	Rate  float64 `json:"rate"` // of In per second over the last minute
	// Out is the messages it published (a sink: wrote), Errors its
	// failed attempts that were retried, both by this worker.
	Out    uint64 `json:"out,omitempty"`
	Errors uint64 `json:"errors,omitempty"`
	Error  string `json:"error,omitempty"`
	// HeldSince is when the stage became held (StageHeld), and HeldBy the
	// destination's error that holds it, without the user names and
	// passwords of URLs; both empty when it is not held.
	HeldSince time.Time `json:"held_since,omitzero"`
	HeldBy    string    `json:"held_by,omitempty"`
}
