package stages

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestCompareBuild(t *testing.T) {
	host := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: ModulePath, Version: "v0.6.0"}}
	plugin := func(goVersion, mode string, deps ...*debug.Module) *debug.BuildInfo {
		bi := &debug.BuildInfo{GoVersion: goVersion, Main: debug.Module{Path: "example.com/geo"}, Deps: deps}
		if mode != "" {
			bi.Settings = []debug.BuildSetting{{Key: "-buildmode", Value: mode}}
		}
		return bi
	}
	sluice := func(v string) *debug.Module { return &debug.Module{Path: ModulePath, Version: v} }
	tests := []struct {
		name    string
		bi      *debug.BuildInfo
		wantErr string
	}{
		{"same Go and sluice", plugin("go1.26.8", "plugin", sluice("v0.6.0")), ""},
		{"no sluice version to compare", plugin("go1.26.8", "plugin"), ""},
		{"another Go", plugin("go1.25.3", "plugin", sluice("v0.6.0")), "geo.so: built with go1.25.3, but this program with go1.26.8: build the plugin with go1.26.8"},
		{"another sluice", plugin("go1.26.8", "plugin", sluice("v0.5.1")), "geo.so: built against sluice v0.5.1, but this program uses sluice v0.6.0"},
		{"a replaced sluice", plugin("go1.26.8", "plugin", &debug.Module{Path: ModulePath, Version: "v0.6.0", Replace: &debug.Module{Path: "../sluice", Version: "(devel)"}}), "built against sluice (devel)"},
		{"an executable", plugin("go1.26.8", "exe"), "geo.so: not a Go plugin but a -buildmode=exe build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := compareBuild("geo.so", tt.bi, host, "go1.26.8")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrPlugin) {
				t.Fatalf("got %v, want an ErrPlugin with %q", err, tt.wantErr)
			}
		})
	}
}

// Files that are not plugins are refused before anything is opened, with
// the file named. Loading real plugins is tested with a sluice binary and
// plugins built by the go command (internal/cli and examples), because a
// test binary holds test builds of the packages a plugin shares.
func TestLoadPluginRefusesNonPlugins(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.so")
	if err := os.WriteFile(text, []byte("not a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.so"), "missing.so: no such file or directory"},
		{"not a Go binary", text, "notes.so: not a Go plugin: "},
		{"a Go executable", exe, "not a Go plugin but a -buildmode=exe build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRegistry()
			specs, err := r.LoadPlugin(tt.path)
			if err == nil || !errors.Is(err, ErrPlugin) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, %v; want an ErrPlugin with %q", specs, err, tt.want)
			}
			if len(r.Specs()) != len(NewRegistry().Specs()) {
				t.Error("a refused plugin changed the registry")
			}
		})
	}
}
