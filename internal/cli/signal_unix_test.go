//go:build unix

package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestShortCommandStopsAtFirstSignal runs sluice validate on a FIFO, which
// it blocks reading, and checks that the first SIGINT or SIGTERM ends it
// at once, killed by the signal.
func TestShortCommandStopsAtFirstSignal(t *testing.T) {
	bin := buildSluice(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "p.yaml")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Skip("no FIFO: ", err)
			}
			cmd := exec.Command(bin, "validate", fifo)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})

			// Opening the FIFO to write returns once sluice has opened it to
			// read; it then waits for the rest of the file, which never comes.
			opened := make(chan *os.File, 1)
			go func() {
				w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
				if err != nil {
					t.Error(err)
				}
				opened <- w
			}()
			select {
			case w := <-opened:
				if w != nil {
					t.Cleanup(func() { w.Close() })
					if _, err := w.WriteString("name: p\n"); err != nil {
						t.Fatal(err)
					}
				}
			case err := <-exited:
				exited <- err
				t.Fatalf("sluice validate exited before reading: %v; stderr:\n%s", err, stderr.String())
			case <-time.After(30 * time.Second):
				// Unblock the goroutine waiting for a reader.
				if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
					defer r.Close()
				}
				t.Fatal("sluice validate did not open the file within 30s")
			}

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				exited <- err
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("sluice validate after %s: %v, want killed by the signal; stderr:\n%s", sig, err, stderr.String())
				}
				if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != sig {
					t.Errorf("sluice validate after %s: %v, want killed by %s; stderr:\n%s", sig, err, sig, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("sluice validate still running 10s after %s", sig)
			}
		})
	}
}
