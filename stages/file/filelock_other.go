//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package file

import "os"

// tryLock does nothing on this platform (Windows, AIX, Solaris, wasm and
// others without flock): the file sink's lock is a no-op and nothing stops
// two writers of one file here.
func tryLock(*os.File) (bool, error) { return true, nil }

// haveFileLock tells that tryLock locks on this platform.
const haveFileLock = false
