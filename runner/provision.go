package runner

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// defaultMaxAckPending bounds the messages a stage's consumer hands out
// before they are acknowledged, across all workers and processes.
const defaultMaxAckPending = 20_000

// input is one durable consumer a stage reads: the stage's consumer on the
// output stream of one upstream stage, filtered to the routes it reads,
// or to one partition of a partitioned upstream stage.
type input struct {
	stage     string // the upstream stage
	stream    string
	str       jetstream.Stream // the upstream stage's output stream
	consumer  jetstream.Consumer
	partition int // the partition it reads, -1 if the upstream stage is not partitioned
}

// streamConfig returns the configuration of the output stream of stage s.
func streamConfig(p *pipeline.Pipeline, s string) jetstream.StreamConfig {
	set := p.Settings
	cfg := jetstream.StreamConfig{
		Name:        schema.StreamName(p.Name, s),
		Description: fmt.Sprintf("sluice pipeline %s: output of stage %s", p.Name, s),
		Subjects:    schema.StreamSubjects(p.Name, s),
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.InterestPolicy,
		Duplicates:  set.DedupWindow,
		Replicas:    set.Replicas,
		// Outputs are published in fast batches (see publishBatch).
		AllowBatchPublish: true,
	}
	if set.Storage == "memory" {
		cfg.Storage = jetstream.MemoryStorage
	}
	if set.Retention == "limits" {
		// Kept for replay: the buffer is bounded by age, and publishing
		// never waits on it.
		cfg.Retention = jetstream.LimitsPolicy
		cfg.MaxAge = set.MaxAge
	} else {
		// Backpressure: a full buffer refuses new messages and the
		// upstream retries until downstream acknowledgements make room.
		cfg.MaxMsgs = int64(set.MaxBuffer)
		cfg.Discard = jetstream.DiscardNew
		if set.MaxBufferBytes > 0 {
			cfg.MaxBytes = set.MaxBufferBytes
		}
	}
	return cfg
}

// dlqConfig returns the configuration of the dead-letter stream.
func dlqConfig(p *pipeline.Pipeline) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        schema.DLQStreamName(p.Name),
		Description: fmt.Sprintf("sluice pipeline %s: dead letters", p.Name),
		Subjects:    schema.DLQSubjects(p.Name),
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  p.Settings.DedupWindow,
		Replicas:    p.Settings.Replicas,
	}
}

// provision creates or updates the streams and durable consumers of p and
// returns the inputs of every stage that reads, by stage name. It is
// idempotent: any number of processes may provision the same pipeline.
func provision(ctx context.Context, js jetstream.JetStream, p *pipeline.Pipeline) (map[string][]input, error) {
	streams := make(map[string]jetstream.Stream)
	for _, s := range p.Stages {
		if s.Role == stages.RoleSink {
			continue // a sink has no output stream
		}
		cfg := streamConfig(p, s.Name)
		str, err := js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("stage %q: stream %s: %w", s.Name, cfg.Name, err)
		}
		streams[s.Name] = str
	}
	dlq := dlqConfig(p)
	if _, err := js.CreateOrUpdateStream(ctx, dlq); err != nil {
		return nil, fmt.Errorf("dead-letter stream %s: %w", dlq.Name, err)
	}

	inputs := make(map[string][]input)
	for _, s := range p.Stages {
		// One consumer per upstream stream, filtered to every subject the
		// stage reads from it (the default output and/or routes).
		byUpstream := make(map[string][]string)
		for _, in := range s.From {
			if byUpstream[in.Stage] == nil {
				// Where the stage's dead letters are replayed (sluice dlq
				// replay), read by this stage only.
				byUpstream[in.Stage] = []string{schema.ReplaySubject(p.Name, in.Stage, s.Name)}
			}
			byUpstream[in.Stage] = append(byUpstream[in.Stage], schema.InputSubject(p.Name, in.Stage, in.Route))
		}
		ups := make([]string, 0, len(byUpstream))
		for u := range byUpstream {
			ups = append(ups, u)
		}
		sort.Strings(ups)
		for _, u := range ups {
			stream := schema.StreamName(p.Name, u)
			cfg := jetstream.ConsumerConfig{
				Durable:        schema.ConsumerName(s.Name),
				Description:    fmt.Sprintf("sluice pipeline %s: stage %s reading %s", p.Name, s.Name, u),
				DeliverPolicy:  jetstream.DeliverAllPolicy,
				AckPolicy:      jetstream.AckExplicitPolicy,
				AckWait:        p.Settings.AckWait,
				MaxDeliver:     -1, // the worker dead-letters after max_deliver itself, so nothing is dropped by the server
				MaxAckPending:  defaultMaxAckPending,
				FilterSubjects: byUpstream[u],
			}
			parts := p.Stage(u).Partitions
			if parts == 0 {
				c, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
				if err != nil {
					return nil, fmt.Errorf("stage %q: consumer %s on %s: %w", s.Name, cfg.Durable, stream, err)
				}
				inputs[s.Name] = append(inputs[s.Name], input{stage: u, stream: stream, str: streams[u], consumer: c, partition: -1})
				continue
			}
			// Partitioned (and so without routes): one consumer per
			// partition, each read by one process at a time, in order.
			replay := schema.ReplaySubject(p.Name, u, s.Name)
			for k := range parts {
				cfg.Durable = schema.PartitionConsumerName(s.Name, k)
				cfg.Description = fmt.Sprintf("sluice pipeline %s: stage %s reading partition %d of %s", p.Name, s.Name, k, u)
				cfg.MaxAckPending = partitionMaxAckPending
				cfg.FilterSubjects = []string{schema.PartitionSubject(p.Name, u, k), replay + "." + strconv.Itoa(k)}
				c, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
				if err != nil {
					return nil, fmt.Errorf("stage %q: consumer %s on %s: %w", s.Name, cfg.Durable, stream, err)
				}
				inputs[s.Name] = append(inputs[s.Name], input{stage: u, stream: stream, str: streams[u], consumer: c, partition: k})
			}
		}
	}
	return inputs, nil
}

// purgeStreams empties the stage streams of p, discarding what an
// interrupted run left in them. The dead letters stay.
func purgeStreams(ctx context.Context, js jetstream.JetStream, p *pipeline.Pipeline) error {
	return eachStageStream(ctx, js, p, func(s *pipeline.Stage, str jetstream.Stream) (bool, error) {
		if err := str.Purge(ctx); err != nil {
			return false, fmt.Errorf("stage %q: purge stream %s: %w", s.Name, str.CachedInfo().Config.Name, err)
		}
		return true, nil
	})
}

// eachStageStream calls fn with the output stream of every stage of p
// that has one, in the order of the file, skipping streams that do not
// exist, until fn returns false or an error.
func eachStageStream(ctx context.Context, js jetstream.JetStream, p *pipeline.Pipeline, fn func(*pipeline.Stage, jetstream.Stream) (bool, error)) error {
	for _, s := range p.Stages {
		if s.Role == stages.RoleSink {
			continue
		}
		name := schema.StreamName(p.Name, s.Name)
		str, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("stage %q: stream %s: %w", s.Name, name, err)
		}
		if more, err := fn(s, str); err != nil || !more {
			return err
		}
	}
	return nil
}
