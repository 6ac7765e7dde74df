package dlq

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Purge deletes the dead letters of pipeline p that f selects (all of
// them for the zero Filter) and returns how many it deleted. Dead letters
// that arrive while it works are kept unless f names a run (they are then
// read one by one). An error wraps [ErrNoPipeline] if p has never run on
// the server.
func Purge(ctx context.Context, nc *nats.Conn, p string, f Filter) (uint64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	str, err := dlqStream(ctx, js, p)
	if err != nil {
		return 0, err
	}
	if f.Run == 0 {
		n, err := purgeSubject(ctx, str, p, filterSubject(p, f.Stage))
		if err == nil {
			// The whole payloads kept for them: their names are the dead
			// letters' IDs, "p/stage/...".
			prefix := p + "/" + f.Stage + "/"
			err = deleteWhole(ctx, js, p, func(name string) bool { return f.Stage == "" || strings.HasPrefix(name, prefix) })
		}
		return n, err
	}
	var n uint64
	var failure error
	err = eachDeadLetter(ctx, nc, p, f, func(dl DeadLetter) bool {
		if err := str.DeleteMsg(ctx, dl.Seq); err != nil {
			failure = fmt.Errorf("pipeline %q: delete dead letter %d: %w", p, dl.Seq, err)
			return false
		}
		if name := objectName(dl.Header); name != "" {
			if err := deleteWhole(ctx, js, p, func(n string) bool { return n == name }); err != nil {
				failure = fmt.Errorf("pipeline %q: delete the whole payload of dead letter %d: %w", p, dl.Seq, err)
				return false
			}
		}
		n++
		return true
	})
	if err == nil {
		err = failure
	}
	return n, err
}

// purgeSubject purges what the dead-letter stream holds on subject up to
// its last message now, and returns how many messages that was.
func purgeSubject(ctx context.Context, str jetstream.Stream, p, subject string) (uint64, error) {
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("pipeline %q: count dead letters: %w", p, err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	if n == 0 {
		return 0, nil
	}
	if err := str.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(info.State.LastSeq+1)); err != nil {
		return 0, fmt.Errorf("pipeline %q: purge dead letters: %w", p, err)
	}
	return n, nil
}
