package runner

import (
	"fmt"
	"slices"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// outputKeys sets on each output of a stage what its event_time, key and
// partitions say: the Sluice-Event-Time and Sluice-Key headers, and the
// partition's subject. Each worker has its own (an Expr is not safe for
// concurrent use).
type outputKeys struct {
	eventTime  *stages.Expr // nil if the stage sets no event_time
	key        *stages.Expr // nil if the stage sets no key
	partitions int
	subjects   []string // the subject of each partition
}

// newOutputKeys returns the outputKeys of stage st of pipeline p, or nil
// if it sets none of event_time, key and partitions.
func newOutputKeys(p *pipeline.Pipeline, st *pipeline.Stage) (*outputKeys, error) {
	if st.EventTime == "" && st.Key == "" {
		return nil, nil
	}
	k := &outputKeys{partitions: st.Partitions}
	var err error
	if st.EventTime != "" {
		if k.eventTime, err = stages.CompileExpr(st.EventTime); err != nil {
			return nil, fmt.Errorf("event_time: %w", err)
		}
	}
	if st.Key != "" {
		if k.key, err = stages.CompileExpr(st.Key); err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
	}
	for i := range st.Partitions {
		k.subjects = append(k.subjects, schema.PartitionSubject(p.Name, st.Name, i))
	}
	return k, nil
}

// apply evaluates the stage's expressions on o and sets its headers (o's
// Header must not be nil). It returns the subject of o's partition, or ""
// when the output is not partitioned. An expression that fails on o gives
// a permanent error naming the key.
func (k *outputKeys) apply(o *stages.Message) (string, error) {
	if k.eventTime != nil {
		v, err := k.eventTime.Eval(o)
		if err != nil {
			return "", fmt.Errorf("event_time: %w", err)
		}
		t, err := stages.EventTime(v)
		if err != nil {
			return "", stages.Permanent(fmt.Errorf("event_time: %w", err))
		}
		o.Header[stages.HeaderEventTime] = []string{stages.FormatEventTime(t)}
	}
	if k.key == nil {
		return "", nil
	}
	v, err := k.key.Eval(o)
	if err != nil {
		return "", fmt.Errorf("key: %w", err)
	}
	key, err := stages.KeyString(v)
	if err != nil {
		return "", stages.Permanent(fmt.Errorf("key: %w", err))
	}
	o.Header[stages.HeaderKey] = []string{key}
	if k.partitions == 0 {
		return "", nil
	}
	return k.subjects[schema.Partition(key, k.partitions)], nil
}

// outputSubjects returns every subject stage st of p publishes on: its
// partitions, or its default output and its routes.
func outputSubjects(p *pipeline.Pipeline, st *pipeline.Stage) []string {
	if st.Partitions > 0 {
		out := make([]string, st.Partitions)
		for k := range out {
			out[k] = schema.PartitionSubject(p.Name, st.Name, k)
		}
		return out
	}
	var out []string
	for route := range outputRoutes(st) {
		if route == "" {
			out = append(out, schema.Subject(p.Name, st.Name))
		} else {
			out = append(out, schema.Subject(p.Name, st.Name)+"."+route)
		}
	}
	slices.Sort(out)
	return out
}
