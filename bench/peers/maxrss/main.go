// Command maxrss runs a program and writes, to a file, its peak resident
// set, how long it ran and the CPU time it used, as one JSON object:
//
//	maxrss REPORT PROG [ARG...]
//	{"max_rss_kib":10432,"elapsed_ns":1360000000,"cpu_ns":1410000000,"exit_code":0}
//
// bench's peers group runs each system through it rather than reading
// wait4's ru_maxrss itself: Go starts children with vfork, sharing the
// parent's memory until exec, and Linux counts the parent's high-water
// resident set into the child's ru_maxrss at exec. From this small
// process the same count adds only its own few MiB. The program's stdin,
// stdout and stderr are this process's; its exit code is this process's.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// Report is what maxrss writes.
type Report struct {
	MaxRSSKiB int64 `json:"max_rss_kib"` // 0 if unknown
	ElapsedNs int64 `json:"elapsed_ns"`
	CPUNs     int64 `json:"cpu_ns"` // user and system
	ExitCode  int   `json:"exit_code"`
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: maxrss REPORT PROG [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// SIGINT and SIGTERM go on to the program, which decides when to stop.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	began := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "maxrss: %v\n", err)
		os.Exit(1)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	elapsed := time.Since(began)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintf(os.Stderr, "maxrss: %v\n", err)
		os.Exit(1)
	}
	rep := Report{
		ElapsedNs: elapsed.Nanoseconds(),
		CPUNs:     (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Nanoseconds(),
		ExitCode:  cmd.ProcessState.ExitCode(),
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rep.MaxRSSKiB = int64(ru.Maxrss)
		if runtime.GOOS == "darwin" {
			rep.MaxRSSKiB /= 1024 // bytes there
		}
	}
	b, _ := json.Marshal(rep)
	if err := os.WriteFile(os.Args[1], append(b, '\n'), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "maxrss: %v\n", err)
		os.Exit(1)
	}
	os.Exit(rep.ExitCode)
}
