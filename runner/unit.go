package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/stages"
)

// unit is one stage's instances in this process: a source loop, or a feed
// with its workers and their transforms or their shared sink.
type unit struct {
	stage      *pipeline.Stage
	source     *sourceLoop
	feed       *feed
	workers    []*worker
	transforms []stages.Transform
	sink       stages.Sink
}

// info returns what the instances of stage s are told about where they run.
func (r *run) info(s *pipeline.Stage) stages.Info {
	return stages.Info{
		Pipeline:    r.p.Name,
		Stage:       s.Name,
		WorkerID:    r.opts.WorkerID,
		Logger:      r.log.With("stage", s.Name),
		Stdin:       r.opts.Stdin,
		Stdout:      r.opts.Stdout,
		Run:         r.id,
		Resumed:     r.resumed || r.joined,
		DedupWindow: r.p.Settings.DedupWindow,
		Conn:        r.nc,
		Replicas:    r.p.Settings.Replicas,
		State:       r.kv,
	}
}

// buildUnit constructs the instances of stage s: its source, or one
// transform per worker, or one sink its workers share. On failure it
// closes what it built.
func (r *run) buildUnit(s *pipeline.Stage, inputs []input) (*unit, error) {
	u := &unit{stage: s}
	info := r.info(s)
	err := func() error {
		switch s.Role {
		case stages.RoleSource:
			src, err := s.Spec.NewSource(s.Params, info)
			if err != nil {
				return err
			}
			u.source, err = newSourceLoop(r, s, src)
			if err != nil {
				_ = src.Close(context.Background())
			}
			return err
		}
		if s.Role == stages.RoleSink {
			var err error
			if u.sink, err = s.Spec.NewSink(s.Params, info); err != nil {
				return err
			}
		}
		u.feed = newFeed(r, s, inputs)
		for i := range s.Replicas {
			var t stages.Transform
			if s.Role == stages.RoleTransform {
				info.Worker = i
				var err error
				if t, err = s.Spec.NewTransform(s.Params, info); err != nil {
					return err
				}
				if _, ok := t.(stages.Windowed); s.Spec.Watermarks && !ok {
					_ = t.Close(context.Background())
					return fmt.Errorf("%s %q declares Watermarks but its transform is not a stages.Windowed", s.Role, s.Type)
				}
				u.transforms = append(u.transforms, t)
			}
			w, err := newWorker(r, s, i, inputs, u.feed, u.sink, t)
			if err != nil {
				return err
			}
			u.workers = append(u.workers, w)
		}
		return nil
	}()
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.opts.StopTimeout)
		defer cancel()
		_ = closeUnits(ctx, []*unit{u})
		return nil, fmt.Errorf("stage %q: %w", s.Name, err)
	}
	return u, nil
}

// closeUnits closes the instances of units: sources first, sinks last (a
// sink's Close flushes and syncs its output). It returns every error.
func closeUnits(ctx context.Context, units []*unit) error {
	var errs []error
	for _, u := range units {
		if u.source != nil {
			if err := u.source.src.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stage %q: close: %w", u.stage.Name, err))
			}
		}
	}
	for _, u := range units {
		for _, t := range u.transforms {
			if err := t.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stage %q: close transform: %w", u.stage.Name, err))
			}
		}
	}
	for _, u := range units {
		if u.sink != nil {
			if err := u.sink.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stage %q: close sink: %w", u.stage.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// crew runs the workers and feeds of transform and sink units until told
// to stop. A stop lets every worker settle the batch in hand; stopTimeout
// after it, the stages' context is cancelled so that a stage that heeds
// it gives up.
type crew struct {
	work, hard         context.Context
	stopWork, stopHard context.CancelFunc
	stopTimer          func() bool

	mu       sync.Mutex
	stopped  bool
	feeds    []*feed
	running  sync.WaitGroup
	stopOnce sync.Once
}

func newCrew(ctx context.Context, stopTimeout time.Duration) *crew {
	c := &crew{}
	c.work, c.stopWork = context.WithCancel(context.WithoutCancel(ctx))
	c.hard, c.stopHard = context.WithCancel(context.WithoutCancel(ctx))
	c.stopTimer = context.AfterFunc(c.work, func() {
		t := time.AfterFunc(stopTimeout, c.stopHard)
		context.AfterFunc(c.hard, func() { t.Stop() })
	})
	return c
}

// start runs the workers of u and starts its feed.
func (c *crew) start(u *unit) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return ErrStopped
	}
	for _, w := range u.workers {
		c.running.Go(func() { w.loop(c.work, c.hard) })
	}
	c.feeds = append(c.feeds, u.feed)
	u.feed.start(c.work)
	return nil
}

// stop tells the workers to stop, waits until they have, and stops the
// feeds, which nak what was pulled but not processed. Calls after the
// first do nothing.
func (c *crew) stop() {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopped = true
		c.mu.Unlock()
		c.stopWork()
		c.running.Wait()
		for _, f := range c.feeds {
			f.stop()
		}
		c.stopTimer()
		c.stopHard()
	})
}

// DefaultWorkerID returns the name of this host, or "localhost" if it has
// none: what names this process among those that run a pipeline when it
// is given no ID.
func DefaultWorkerID() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}
