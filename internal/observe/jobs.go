package observe

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/runner"
)

// The states of a pipeline of the process.
const (
	stateWaiting = "not started"
	stateRunning = "running"
	stateStopped = "stopped"
)

// jobs is what the process runs: the pipelines it is to run, each waiting,
// running (with its job) or stopped. Safe for concurrent use.
//
// A worker's (dynamic) pipelines come and go with the deployments: one
// stopped is forgotten, not kept as stopped.
type jobs struct {
	dynamic bool
	mu      sync.Mutex
	order   []string // pipeline names, as given
	state   map[string]string
	active  map[string]*runner.Job
	last    map[string]*runner.Job // the job of a stopped pipeline, for its final counts on the status page
}

func newJobs(pipelines []string) *jobs {
	js := &jobs{order: slices.Clone(pipelines), state: make(map[string]string), active: make(map[string]*runner.Job), last: make(map[string]*runner.Job)}
	for _, p := range pipelines {
		js.state[p] = stateWaiting
	}
	return js
}

func (js *jobs) started(j *runner.Job) {
	js.mu.Lock()
	defer js.mu.Unlock()
	p := j.Pipeline()
	if _, known := js.state[p]; !known {
		js.order = append(js.order, p)
	}
	js.state[p] = stateRunning
	js.active[p] = j
	delete(js.last, p)
}

func (js *jobs) stopped(pipeline string) {
	js.mu.Lock()
	defer js.mu.Unlock()
	if _, known := js.state[pipeline]; !known {
		js.order = append(js.order, pipeline)
	}
	js.state[pipeline] = stateStopped
	if j := js.active[pipeline]; j != nil {
		js.last[pipeline] = j
	}
	delete(js.active, pipeline)
	if js.dynamic {
		js.order = slices.DeleteFunc(js.order, func(p string) bool { return p == pipeline })
		delete(js.state, pipeline)
		delete(js.last, pipeline)
	}
}

// running returns the jobs running now, in the order of their pipelines.
func (js *jobs) running() []*runner.Job {
	js.mu.Lock()
	defer js.mu.Unlock()
	var out []*runner.Job
	for _, p := range js.order {
		if j := js.active[p]; j != nil {
			out = append(out, j)
		}
	}
	return out
}

// notReady returns a line per pipeline that is not running, empty when
// every one is (or there is none).
func (js *jobs) notReady() string {
	js.mu.Lock()
	defer js.mu.Unlock()
	var b strings.Builder
	for _, p := range js.order {
		if st := js.state[p]; st != stateRunning {
			fmt.Fprintf(&b, "pipeline %s: %s\n", p, st)
		}
	}
	return b.String()
}
