package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/filelock"
)

// ErrStoreInUse is returned by [Start] when another process runs a server
// on the store directory: two servers on one store would corrupt it.
var ErrStoreInUse = errors.New("sluice: store in use by another process")

// LockFile is the file in a store directory whose lock a process holds
// while it runs a server on the store; it says who holds it.
const LockFile = "sluice.lock"

// JetStreamDir is the directory nats-server keeps in a store directory.
const JetStreamDir = "jetstream"

// storeHolder is what the lock file says about the process that holds it.
type storeHolder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"` // the program and its subcommand, nothing more (no flags, which may hold secrets)
	Started time.Time `json:"started"`
}

func (h storeHolder) String() string {
	return fmt.Sprintf("process %d on %s (%s, started %s)", h.PID, h.Host, h.Command, h.Started.Local().Format(time.DateTime))
}

// lockStore takes the lock of store directory dir, creating it, and
// records this process as its holder. The lock lasts until the returned
// file is closed, or the process dies.
func lockStore(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sluice: embedded server: store %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sluice: embedded server: %w", err)
	}
	ok, err := filelock.TryLock(f)
	if err == nil && !ok {
		err = fmt.Errorf("%w: the store %s is used by %s; stop it first, or have it listen (sluice run --listen ADDR) and connect to it (--nats nats://ADDR)", ErrStoreInUse, dir, readHolder(f))
	}
	if err == nil {
		err = writeHolder(f)
	}
	if err != nil {
		f.Close()
		if !errors.Is(err, ErrStoreInUse) {
			err = fmt.Errorf("sluice: embedded server: lock %s: %w", path, err)
		}
		return nil, err
	}
	return f, nil
}

// readHolder says who holds the lock of f, as its holder wrote it.
func readHolder(f *os.File) string {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 4096))
	var h storeHolder
	if err != nil || json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return "another process"
	}
	return h.String()
}

// writeHolder records this process in f, whose lock it holds.
func writeHolder(f *os.File) error {
	host, _ := os.Hostname()
	cmd := filepath.Base(os.Args[0])
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		cmd += " " + os.Args[1]
	}
	b, err := json.Marshal(storeHolder{PID: os.Getpid(), Host: host, Command: cmd, Started: time.Now()})
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteAt(append(b, '\n'), 0)
	return err
}
