//go:build (linux || darwin || freebsd) && cgo

package stages

import "plugin"

// PluginsSupported reports whether this program can load Go plugins: on
// Linux, macOS and FreeBSD, built with cgo.
const PluginsSupported = true

func openGoPlugin(path string) error {
	if _, err := plugin.Open(path); err != nil {
		return explainOpenError(path, err)
	}
	return nil
}
