package stages

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// ErrPlugin is wrapped by every error of [Registry.LoadPlugin].
var ErrPlugin = errors.New("sluice: plugin")

// ModulePath is the module path of sluice, which a plugin must be built
// against at the same version as the program that loads it.
const ModulePath = "github.com/sluicehq/sluice"

// Loading a Go plugin runs its init functions, which call [Register] or
// [MustRegister]; while one loads, those hand their specs to the loader.
var (
	loadMu    sync.Mutex // one plugin loads at a time
	captureMu sync.Mutex
	capturing bool
	capturedS []Spec

	// opened remembers what each plugin file registered when it was
	// opened: a plugin's init functions run only once per process.
	opened = map[string][]Spec{}
)

// captured takes spec for the plugin being loaded, if one is.
func captured(spec Spec) bool {
	captureMu.Lock()
	defer captureMu.Unlock()
	if capturing {
		capturedS = append(capturedS, spec)
	}
	return capturing
}

// LoadPlugin opens the Go plugin at path and adds the stage types its init
// functions register (with [Register] or [MustRegister]) to r, marking
// each with the file in [Spec.Plugin]. It returns the specs added.
//
// A plugin is a package main built with `go build -buildmode=plugin` by
// the same Go version, against the same version of sluice (and of every
// package both use), as the program that loads it; LoadPlugin checks that
// first and says which differs. Loading the same file again, into this
// or another registry, adds the same types without running its init
// functions again. Go plugins cannot be unloaded.
//
// Errors wrap [ErrPlugin] and name the file: it is not a Go plugin, it was
// built by another Go or against another sluice, it registers a type name
// that r has, or plugins are not supported on this platform.
func (r *Registry) LoadPlugin(path string) ([]*Spec, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrPlugin, path, err)
	}
	loadMu.Lock()
	defer loadMu.Unlock()
	specs, ok := opened[abs]
	if !ok {
		if err := checkPluginBuild(path); err != nil {
			return nil, err
		}
		if specs, err = openPlugin(path); err != nil {
			return nil, err
		}
		if len(specs) == 0 {
			return nil, fmt.Errorf("%w %s: it registers no stage type: its init functions must call stages.Register or stages.MustRegister", ErrPlugin, path)
		}
		opened[abs] = specs
	}
	// All or nothing: check every name before adding any.
	for _, s := range specs {
		if have, err := r.LookupRole(s.Role(), s.Name); err == nil && have.Plugin != abs {
			from := "built into this program"
			if have.Plugin != "" {
				from = "registered by plugin " + have.Plugin
			}
			return nil, fmt.Errorf("%w %s: registers %s %q, which is already %s", ErrPlugin, path, s.Role(), s.Name, from)
		}
	}
	out := make([]*Spec, 0, len(specs))
	for _, s := range specs {
		s.Plugin = abs
		if have, err := r.LookupRole(s.Role(), s.Name); err == nil {
			out = append(out, have) // loaded into r before
			continue
		}
		if err := r.Register(s); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrPlugin, path, err)
		}
		have, _ := r.LookupRole(s.Role(), s.Name)
		out = append(out, have)
	}
	return out, nil
}

// openPlugin opens the plugin file and returns the specs its init
// functions registered.
func openPlugin(path string) ([]Spec, error) {
	captureMu.Lock()
	capturing, capturedS = true, nil
	captureMu.Unlock()
	defer func() {
		captureMu.Lock()
		capturing, capturedS = false, nil
		captureMu.Unlock()
	}()
	if err := openGoPlugin(path); err != nil {
		return nil, err
	}
	captureMu.Lock()
	defer captureMu.Unlock()
	return capturedS, nil
}

// checkPluginBuild reads the build information of the plugin file and
// compares it with this program's: buildmode, Go version and sluice
// version.
func checkPluginBuild(path string) error {
	if _, err := os.Stat(path); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("%w %s: %w", ErrPlugin, path, err)
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w %s: not a Go plugin: %w", ErrPlugin, path, err)
	}
	return compareBuild(path, bi, hostBuildInfo(), runtime.Version())
}

// compareBuild checks the build information of a plugin file against
// the loading program's (host, and its Go version goVersion).
func compareBuild(path string, bi, host *debug.BuildInfo, goVersion string) error {
	mode := ""
	for _, s := range bi.Settings {
		if s.Key == "-buildmode" {
			mode = s.Value
		}
	}
	if mode != "" && mode != "plugin" {
		return fmt.Errorf("%w %s: not a Go plugin but a -buildmode=%s build: build it with go build -buildmode=plugin", ErrPlugin, path, mode)
	}
	if bi.GoVersion != goVersion {
		return fmt.Errorf("%w %s: built with %s, but this program with %s: build the plugin with %s", ErrPlugin, path, bi.GoVersion, goVersion, goVersion)
	}
	if want, got := moduleVersion(host), moduleVersion(bi); want != "" && got != "" && want != got {
		return fmt.Errorf("%w %s: built against sluice %s, but this program uses sluice %s: build the plugin against %s %s", ErrPlugin, path, got, want, ModulePath, want)
	}
	return nil
}

// hostBuildInfo returns the build information of this program, or nil.
func hostBuildInfo() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

// moduleVersion returns the version of the sluice module in a build, or
// "" if the build does not say.
func moduleVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return ""
	}
	if bi.Main.Path == ModulePath {
		return bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == ModulePath {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

// explainOpenError turns the error of plugin.Open into one that says what
// to do.
func explainOpenError(path string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "different version of package"):
		// The versions agree but the sources do not (a development
		// build), or build flags differ (-race, -trimpath, tags).
		pkg := msg[strings.LastIndex(msg, " ")+1:]
		return fmt.Errorf("%w %s: built from other sources of package %s than this program: build the plugin and sluice from the same sluice sources, with the same flags (-race, -trimpath, tags)", ErrPlugin, path, pkg)
	case strings.Contains(msg, "plugin already loaded"):
		return fmt.Errorf("%w %s: a plugin of the same package path is loaded from another file", ErrPlugin, path)
	}
	return fmt.Errorf("%w %s: %w", ErrPlugin, path, err)
}
