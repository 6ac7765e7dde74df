package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/natstest"
)

func TestEmbed(t *testing.T) {
	srv := natstest.Server(t)
	file, err := filepath.Abs("pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"amount":74,"country":"NG","id":2,"risk":0.69}
{"amount":222,"country":"NG","id":6,"risk":1}
`
	tests := []struct {
		name string
		args []string
	}{
		{"built in Go, embedded server", nil},
		{"from YAML, embedded server", []string{"-f", file}},
		{"built in Go, on a NATS server", []string{"-nats", srv.ClientURL()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"-store", t.TempDir()}, tt.args...)
			if err := run(ctx, args, &stdout, &stderr); err != nil {
				t.Fatalf("run: %v\nstderr:\n%s", err, &stderr)
			}
			if stdout.String() != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, want)
			}
			if !strings.Contains(stderr.String(), "score  transform     score   8    8") {
				t.Errorf("summary:\n%s", &stderr)
			}
		})
	}
}

func TestEmbedRejectsBadParameters(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "name: bad\nstages:\n  - {name: g, source: generate, with: {count: 1}}\n  - {name: s, transform: score, with: {large_amount: -1}}\n  - {name: o, sink: discard}\n")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-store", dir, "-f", bad}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), bad+`:4:54: stage "s": transform "score": parameter "large_amount": must be > 0`) {
		t.Fatalf("got %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
