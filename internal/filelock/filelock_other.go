//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package filelock

import "os"

// TryLock does nothing on this platform (Windows, AIX, Solaris, wasm and
// others without flock): it always reports the lock taken.
func TryLock(*os.File) (bool, error) { return true, nil }

// Supported tells that TryLock locks on this platform.
const Supported = false
