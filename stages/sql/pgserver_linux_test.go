package sql

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgServer is a PostgreSQL server of one test, started from the server
// binaries installed on the machine, with its data in a temporary
// directory, listening on 127.0.0.1 on a free port. Any test may start
// one with startPostgres.
type pgServer struct {
	// DSN connects to the database "postgres" as the superuser
	// "postgres", without a password.
	DSN  string
	Port int

	bin  string // the directory of the server binaries
	dir  string // the test's directory, with the socket
	data string // the data directory
	cred *syscall.Credential
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
	log  string        // the server's log file
}

// pgInstallHint says how to get the server binaries.
const pgInstallHint = "install PostgreSQL's server (Debian/Ubuntu: apt-get install postgresql; its binaries go to /usr/lib/postgresql/VERSION/bin, which is searched)"

// startPostgres starts a server and stops it when the test ends. Without
// server binaries the test is skipped, saying how to install them; it
// fails instead when CI=true, so that CI cannot pass without running it.
// As root, which PostgreSQL refuses to run as, initdb and the server run
// as the user "postgres" if there is one, else "nobody".
func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	bin, err := postgresBinDir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v: %s", err, pgInstallHint)
		}
		t.Skipf("%v: %s", err, pgInstallHint)
	}
	t.Logf("PostgreSQL server binaries: %s", bin)
	dir := t.TempDir()
	cred, err := pgCredential(dir)
	if err != nil {
		t.Skipf("cannot run PostgreSQL: %v", err)
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "--auth=trust", "--username=postgres",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb (%s): %v\n%s", bin, err, out)
	}

	s := &pgServer{bin: bin, dir: dir, data: data, cred: cred, log: filepath.Join(dir, "server.log")}
	if s.Port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	if err := s.Start(); err != nil {
		t.Fatalf("postgres (%s): %v\n%s", bin, err, s.logText())
	}
	return s
}

// Start starts the server, again after Stop, on the same data and port,
// and waits until it accepts connections.
func (s *pgServer) Start() error {
	logFile, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the server has its own copy
	s.cmd = exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.data,
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-k", s.dir,
		"-F", // no fsync: a test's data need not survive a power cut
		"-c", "max_connections=40", "-c", "shared_buffers=16MB")
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: s.cred,
		// A killed test takes its server along (immediate shutdown).
		Pdeathsig: syscall.SIGQUIT,
	}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	s.done = done
	go func(cmd *exec.Cmd) {
		cmd.Wait()
		close(done)
	}(s.cmd)
	if err := s.waitReady(30 * time.Second); err != nil {
		return fmt.Errorf("does not accept connections: %w", err)
	}
	return nil
}

// waitReady polls the server until it accepts a connection, it exits, or
// the timeout passes.
func (s *pgServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgconn.Connect(ctx, s.DSN)
		cancel()
		if err == nil {
			return conn.Close(context.Background())
		}
		select {
		case <-s.done:
			return fmt.Errorf("the server exited: %v", s.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond): // polling, with a deadline
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// Stop shuts the server down (fast: open sessions are ended) and waits
// for it to exit. Stopping again does nothing; Start starts it again.
func (s *pgServer) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil // never started
	}
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return errors.New("the server did not stop within 30s and was killed")
	}
}

func (s *pgServer) logText() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

// postgresBinDir finds the directory of the server binaries initdb and
// postgres: on PATH, else Debian's /usr/lib/postgresql/VERSION/bin, the
// highest version first.
func postgresBinDir() (string, error) {
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(initdb), nil
		}
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	version := func(path string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(path))), 64)
		return v
	}
	slices.SortFunc(found, func(a, b string) int { return cmp.Compare(version(b), version(a)) })
	for _, initdb := range found {
		bin := filepath.Dir(initdb)
		if _, err := os.Stat(filepath.Join(bin, "postgres")); err == nil {
			return bin, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb and postgres) on PATH or in /usr/lib/postgresql/*/bin")
}

// pgCredential returns the user to run PostgreSQL as: nil, the test's
// own, unless it is root. For another user it hands dir over and lets it
// reach dir through its parent.
func pgCredential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("running as root, which PostgreSQL refuses, and there is no user postgres or nobody to run it as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user %s: %w", u.Username, err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, err
	}
	// The temporary directories above dir are root's, mode 0700.
	tmp := filepath.Clean(os.TempDir())
	for d := filepath.Dir(dir); d != tmp && strings.HasPrefix(d, tmp+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, err
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
