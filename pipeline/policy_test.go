package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/stages"
)

// policyRegistry returns a registry with a source gen, a source file and
// a sink file whose path is a file-system path, a transform cmd that runs
// programs, and a sink db whose dsn is a path only for driver file.
func policyRegistry(t *testing.T) *stages.Registry {
	t.Helper()
	newSource := func(stages.Params, stages.Info) (stages.Source, error) { return nil, nil }
	newTransform := func(stages.Params, stages.Info) (stages.Transform, error) { return nil, nil }
	newSink := func(stages.Params, stages.Info) (stages.Sink, error) { return nil, nil }
	reg := stages.NewRegistry()
	for _, spec := range []stages.Spec{
		{Name: "gen", NewSource: newSource, Params: []stages.Param{{Name: "text", Type: stages.TypeString}}},
		{Name: "file", NewSource: newSource, Params: []stages.Param{{Name: "path", Type: stages.TypeString, Required: true, Path: true}}},
		{Name: "cmd", NewTransform: newTransform, RunsCommands: true, Params: []stages.Param{{Name: "command", Type: stages.TypeString}}},
		{Name: "file", NewSink: newSink, Params: []stages.Param{{Name: "paths", Type: stages.TypeStringList, Path: true}}},
		{Name: "db", NewSink: newSink, Params: []stages.Param{{Name: "driver", Type: stages.TypeString}, {Name: "dsn", Type: stages.TypeString}},
			Paths: func(p stages.Params) []string {
				if p.String("driver") == "file" {
					return []string{"dsn"}
				}
				return nil
			}},
	} {
		if err := reg.Register(spec); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func TestPolicy(t *testing.T) {
	dataDir := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dataDir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dataDir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"SLUICE_NATS_PASSWORD": "s3cret",
		"HOME":                 "/home/worker",
		"SLUICE_VAR_X":         "allowed-x",
		"TEAM_Y":               "allowed-y",
	}
	const head = "name: p\nstages:\n"
	tests := []struct {
		name   string
		policy *Policy
		src    string
		// want are the problems, each a substring of one line; none means
		// it validates.
		want []string
		// param, if set, is "stage.param=value" expected after validation.
		param string
	}{
		{name: "worker secret", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: gen\n    with:\n      text: '{\"pw\": \"${SLUICE_NATS_PASSWORD}\"}'\n",
			want: []string{`p.yaml:6:13: stage "s": with.text: variable "SLUICE_NATS_PASSWORD" may not be read by a deployed pipeline: only names beginning with SLUICE_VAR_`}},
		{name: "home", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: gen\n    with:\n      text: ${HOME}\n",
			want: []string{`p.yaml:6:13: stage "s": with.text: variable "HOME"`}},
		{name: "default does not hide a refused variable", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: gen\n    with:\n      text: ${HOME:-/tmp}\n",
			want: []string{`variable "HOME" may not be read`}},
		{name: "refused in settings", policy: &Policy{DataDir: dataDir},
			src:  "name: p\nsettings:\n  max_buffer: ${MAX:-10}\nstages:\n  - name: s\n    source: gen\n",
			want: []string{`p.yaml:3:15: settings.max_buffer: variable "MAX"`}},
		{name: "allowed by the default prefix", policy: &Policy{DataDir: dataDir},
			src:   head + "  - name: s\n    source: gen\n    with:\n      text: ${SLUICE_VAR_X}\n",
			param: "s.text=allowed-x"},
		{name: "allowed by a prefix of the worker", policy: &Policy{DataDir: dataDir, AllowEnv: []string{"TEAM_"}},
			src:   head + "  - name: s\n    source: gen\n    with:\n      text: ${TEAM_Y}-${TEAM_Z:-z}\n",
			param: "s.text=allowed-y-z"},
		{name: "the worker's prefixes replace the default", policy: &Policy{DataDir: dataDir, AllowEnv: []string{"TEAM_"}},
			src:  head + "  - name: s\n    source: gen\n    with:\n      text: ${SLUICE_VAR_X}\n",
			want: []string{`variable "SLUICE_VAR_X" may not be read by a deployed pipeline: only names beginning with TEAM_`}},
		{name: "no policy reads anything", policy: nil,
			src:   head + "  - name: s\n    source: gen\n    with:\n      text: ${SLUICE_NATS_PASSWORD}\n",
			param: "s.text=s3cret"},
		{name: "exec refused", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: gen\n  - name: c\n    transform: cmd\n  - name: w\n    sink: file\n",
			want: []string{`p.yaml:6:16: stage "c": transform "cmd" runs programs on the worker, which does not allow it`}},
		{name: "exec allowed", policy: &Policy{DataDir: dataDir, AllowExec: true},
			src: head + "  - name: s\n    source: gen\n  - name: c\n    transform: cmd\n  - name: w\n    sink: file\n"},
		{name: "plugins refused", policy: &Policy{DataDir: dataDir},
			src:  "name: p\nplugins: [geo.so]\nstages:\n  - name: s\n    source: gen\n",
			want: []string{`p.yaml:2:1: plugins: a deployed pipeline may not load Go plugins`}},
		{name: "plugin outside the data dir", policy: &Policy{DataDir: dataDir, AllowPlugins: true},
			src:  "name: p\nplugins: [../geo.so]\nstages:\n  - name: s\n    source: gen\n",
			want: []string{`p.yaml:2:11: plugins[0]: path "../geo.so" is outside the data directory`}},
		{name: "relative path resolves under the data dir", policy: &Policy{DataDir: dataDir},
			src:   head + "  - name: s\n    source: file\n    with:\n      path: in/*.csv\n",
			param: "s.path=" + filepath.Join(dataDir, "in", "*.csv")},
		{name: "absolute path inside", policy: &Policy{DataDir: dataDir},
			src:   head + "  - name: s\n    source: file\n    with:\n      path: " + filepath.Join(dataDir, "in", "x.csv") + "\n",
			param: "s.path=" + filepath.Join(dataDir, "in", "x.csv")},
		{name: "dot-dot escape", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: file\n    with:\n      path: ../x\n",
			want: []string{`p.yaml:6:13: stage "s": source "file": parameter "path": path "../x" is outside the data directory`}},
		{name: "dot-dot inside a longer path", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: file\n    with:\n      path: in/../../x\n",
			want: []string{`path "in/../../x" is outside the data directory`}},
		{name: "absolute path outside", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: file\n    with:\n      path: /etc/passwd\n",
			want: []string{`path "/etc/passwd" is outside the data directory`}},
		{name: "symlink out", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: file\n    with:\n      path: escape/secret\n",
			want: []string{`path "escape/secret" leads by a symbolic link out of the data directory`}},
		{name: "symlink out, lexical check", policy: &Policy{DataDir: dataDir, Lexical: true},
			src:   head + "  - name: s\n    source: file\n    with:\n      path: escape/secret\n",
			param: "s.path=" + filepath.Join(dataDir, "escape", "secret")},
		{name: "file URI", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: file\n    with:\n      path: file:x.db\n",
			want: []string{`a file: URI is not allowed`}},
		{name: "list of paths", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: gen\n  - name: w\n    sink: file\n    with:\n      paths: [a, /etc/x]\n",
			want: []string{`p.yaml:8:14: stage "w": sink "file": parameter "paths": item 2: path "/etc/x" is outside the data directory`}},
		{name: "path only for some values", policy: &Policy{DataDir: dataDir},
			src: head + "  - name: s\n    source: gen\n  - name: w\n    sink: db\n    with:\n      driver: net\n      dsn: /etc/x\n"},
		{name: "path for others", policy: &Policy{DataDir: dataDir},
			src:  head + "  - name: s\n    source: gen\n  - name: w\n    sink: db\n    with:\n      driver: file\n      dsn: /etc/x\n",
			want: []string{`parameter "dsn": path "/etc/x" is outside`}},
		{name: "no policy keeps paths", policy: nil,
			src:   head + "  - name: s\n    source: file\n    with:\n      path: ../x\n",
			param: "s.path=../x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(tt.src), Options{Registry: policyRegistry(t), LookupEnv: env(vars), Policy: tt.policy})
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if tt.param != "" {
					sp, want, _ := strings.Cut(tt.param, "=")
					stage, param, _ := strings.Cut(sp, ".")
					if got := p.Stage(stage).Params.String(param); got != want {
						t.Errorf("%s = %q, want %q", sp, got, want)
					}
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Parse error = %v, want problems", err)
			}
			if len(ps) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%v", len(ps), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems:\n%v\nwant one with %q", err, w)
				}
			}
			for _, secret := range []string{"s3cret", "/home/worker"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("problems hold the value %q of a variable:\n%v", secret, err)
				}
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		policy Policy
		ok     bool
	}{
		{"defaults", Policy{}, true},
		{"prefixes", Policy{AllowEnv: []string{"TEAM_", "X"}}, true},
		{"empty prefix allows nothing more", Policy{AllowEnv: []string{""}}, false},
		{"bad prefix", Policy{AllowEnv: []string{"A-B"}}, false},
		{"missing data dir", Policy{DataDir: filepath.Join(t.TempDir(), "no")}, false},
		{"data dir a file", Policy{DataDir: file}, false},
		{"missing data dir, lexical", Policy{DataDir: "/no/such/dir", Lexical: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalidPolicy", err)
			}
		})
	}
}
