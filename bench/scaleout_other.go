//go:build !linux

package main

import "syscall"

// childAttr has nothing to add outside Linux: a Ctrl-C reaches the
// subprocesses too, and they stop on their own.
func childAttr() *syscall.SysProcAttr { return nil }
