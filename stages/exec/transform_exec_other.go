//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package exec

import "os/exec"

// setProcessGroup does nothing where process groups are not supported.
func setProcessGroup(*exec.Cmd) {}

// killProcess kills the command.
func killProcess(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
