package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/pipeline"
)

// replaysPending reports whether a stage stream of p holds a replayed dead
// letter (package dlq) that the consumer reading it has not acknowledged:
// the last message on one of the consumer's replay subjects is above its
// acknowledgement floor. Once a run has finished, that is the one kind of
// message its streams may still hold for a consumer.
func replaysPending(ctx context.Context, js jetstream.JetStream, p *pipeline.Pipeline) (pending bool, err error) {
	err = eachStageStream(ctx, js, p, func(s *pipeline.Stage, str jetstream.Stream) (bool, error) {
		name := str.CachedInfo().Config.Name
		var infos []*jetstream.ConsumerInfo
		lister := str.ListConsumers(ctx)
		for info := range lister.Info() {
			infos = append(infos, info)
		}
		if err := lister.Err(); err != nil {
			return false, fmt.Errorf("stream %s: list consumers: %w", name, err)
		}
		prefix := schema.ReplayPrefix(p.Name, s.Name)
		for _, info := range infos {
			for _, subj := range filterSubjects(info.Config) {
				if !strings.HasPrefix(subj, prefix) {
					continue
				}
				m, err := str.GetLastMsgForSubject(ctx, subj)
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					continue
				}
				if err != nil {
					return false, fmt.Errorf("stream %s: %w", name, err)
				}
				if m.Sequence > info.AckFloor.Stream {
					pending = true
					return false, nil
				}
			}
		}
		return true, nil
	})
	return pending, err
}

// filterSubjects returns the subjects a consumer reads.
func filterSubjects(cfg jetstream.ConsumerConfig) []string {
	if cfg.FilterSubject != "" {
		return append(slices.Clip(cfg.FilterSubjects), cfg.FilterSubject)
	}
	return cfg.FilterSubjects
}
