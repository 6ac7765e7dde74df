package server

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestSync: the server syncs its store as asked.
func TestSync(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opts     Options
		interval time.Duration // 0: nats-server's default, left alone
		always   bool
	}{
		{"default", Options{}, 0, false},
		{"always", Options{SyncAlways: true}, 0, true},
		{"interval", Options{SyncInterval: time.Second}, time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.StoreDir = t.TempDir()
			s, err := Start(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Shutdown)
			cfg := s.srv.JetStreamConfig()
			if cfg == nil {
				t.Fatal("no JetStream")
			}
			if cfg.SyncAlways != tt.always || tt.interval != 0 && cfg.SyncInterval != tt.interval {
				t.Errorf("sync always %v every %s; want always %v every %s", cfg.SyncAlways, cfg.SyncInterval, tt.always, tt.interval)
			}
		})
	}
}

// TestStoreLock: one server at a time on a store; the second is told who
// holds it, and the store is free again once the first shuts down.
func TestStoreLock(t *testing.T) {
	dir := t.TempDir()
	first, err := Start(Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(Options{StoreDir: dir})
	if !errors.Is(err, ErrStoreInUse) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second server on the store: %v, want ErrStoreInUse naming this process and the store", err)
	}
	first.Shutdown()
	again, err := Start(Options{StoreDir: dir})
	if err != nil {
		t.Fatalf("after the first shut down: %v", err)
	}
	again.Shutdown()
}
