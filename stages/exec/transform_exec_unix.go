//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package exec

import (
	"os/exec"
	"syscall"
)

// setProcessGroup makes the command the leader of a process group of its
// own: a Ctrl-C at the terminal then reaches sluice, which finishes the
// records in flight, and not the command; and killProcess can kill what
// the command started along with it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcess kills the command's process group, or the command alone if
// that fails.
func killProcess(cmd *exec.Cmd) {
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = cmd.Process.Kill()
	}
}
