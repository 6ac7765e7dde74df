package server

import (
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
