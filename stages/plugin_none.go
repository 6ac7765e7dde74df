//go:build !((linux || darwin || freebsd) && cgo)

package stages

import (
	"fmt"
	"runtime"
)

// PluginsSupported reports whether this program can load Go plugins: on
// Linux, macOS and FreeBSD, built with cgo.
const PluginsSupported = false

func openGoPlugin(path string) error {
	return fmt.Errorf("%w %s: this sluice cannot load Go plugins (%s/%s): Go plugins need Linux, macOS or FreeBSD and a program built with cgo (CGO_ENABLED=1); or build your stages into your own program (see examples/embed)", ErrPlugin, path, runtime.GOOS, runtime.GOARCH)
}
