package main

import "syscall"

// childAttr puts a subprocess in a process group of its own, so that a
// Ctrl-C reaches the bench alone and the bench stops workers before
// servers, and has the kernel kill it should the bench die without
// stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
