package configs

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// inEmptyDir runs the test in an empty working directory, so that no
// sluice.yaml is found by accident.
func inEmptyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

func TestLoadDefaults(t *testing.T) {
	inEmptyDir(t)
	s, err := Load(NewViper(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{StoreDir: ".sluice", LogLevel: "info", LogFormat: "auto", GCPercent: 200, MemoryLimit: "auto", ShutdownTimeout: 30 * time.Second, ProgressInterval: 10 * time.Second, LeaseTTL: 10 * time.Second, TraceSampleRatio: 0.01}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v, want %+v", s, want)
	}
}

func TestApplyGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	if got := (Settings{GCPercent: 300}).ApplyGC(); got != 300 || debug.SetGCPercent(300) != 300 {
		t.Errorf("ApplyGC = %d, want 300 in effect", got)
	}
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150) // as the runtime read it at start
	if got := (Settings{GCPercent: 300}).ApplyGC(); got != 150 {
		t.Errorf("with GOGC set, ApplyGC = %d, want GOGC's 150 kept", got)
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	tests := []struct {
		setting string
		want    int64 // -1: none; 0: the default or 90% of a cgroup's limit
		from    string
	}{
		{setting: "512MiB", want: 512 << 20, from: "memory_limit"},
		{setting: "1GB", want: 1e9, from: "memory_limit"},
		{setting: "off", want: -1, from: "memory_limit"},
		{setting: "auto"},
	}
	for _, tt := range tests {
		got, from := (Settings{MemoryLimit: tt.setting}).ApplyMemoryLimit()
		inEffect := debug.SetMemoryLimit(-1)
		if tt.want == 0 {
			// auto: the default here unless this runs in a container
			// with a memory limit.
			if from == "default" && got != DefaultMemoryLimit || from != "default" && from != "cgroup" {
				t.Errorf("%s: ApplyMemoryLimit = %d, %q; want %d, default (or a cgroup's)", tt.setting, got, from, DefaultMemoryLimit)
			}
		} else if got != tt.want || from != tt.from {
			t.Errorf("%s: ApplyMemoryLimit = %d, %q; want %d, %q", tt.setting, got, from, tt.want, tt.from)
		}
		if got > 0 && inEffect != got || got < 0 && inEffect != math.MaxInt64 {
			t.Errorf("%s: the runtime's limit is %d, ApplyMemoryLimit said %d", tt.setting, inEffect, got)
		}
	}
	t.Setenv("GOMEMLIMIT", "300MiB")
	debug.SetMemoryLimit(300 << 20) // as the runtime read it at start
	if got, from := (Settings{MemoryLimit: "1GiB"}).ApplyMemoryLimit(); got != 300<<20 || from != "GOMEMLIMIT" {
		t.Errorf("with GOMEMLIMIT set, ApplyMemoryLimit = %d, %q; want GOMEMLIMIT's %d kept", got, from, 300<<20)
	}
}

func TestLoadEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want func(Settings) string // the field under test
		val  string
	}{
		{"nats url", map[string]string{"SLUICE_NATS_URL": "nats://a:4222"}, func(s Settings) string { return s.NATSURL }, "nats://a:4222"},
		{"store dir", map[string]string{"SLUICE_STORE_DIR": "/var/sluice"}, func(s Settings) string { return s.StoreDir }, "/var/sluice"},
		{"listen", map[string]string{"SLUICE_LISTEN": "127.0.0.1:4222"}, func(s Settings) string { return s.Listen }, "127.0.0.1:4222"},
		{"log level", map[string]string{"SLUICE_LOG_LEVEL": "debug"}, func(s Settings) string { return s.LogLevel }, "debug"},
		{"log level upper case", map[string]string{"SLUICE_LOG_LEVEL": "WARN"}, func(s Settings) string { return s.LogLevel }, "warn"},
		{"log format", map[string]string{"SLUICE_LOG_FORMAT": "json"}, func(s Settings) string { return s.LogFormat }, "json"},
		{"empty is unset", map[string]string{"SLUICE_STORE_DIR": ""}, func(s Settings) string { return s.StoreDir }, ".sluice"},
		{"gc percent", map[string]string{"SLUICE_GC_PERCENT": "150"}, func(s Settings) string { return strconv.Itoa(s.GCPercent) }, "150"},
		{"gc off", map[string]string{"SLUICE_GC_PERCENT": "-1"}, func(s Settings) string { return strconv.Itoa(s.GCPercent) }, "-1"},
		{"memory limit", map[string]string{"SLUICE_MEMORY_LIMIT": "2GiB"}, func(s Settings) string { return s.MemoryLimit }, "2GiB"},
		{"otlp endpoint", map[string]string{"SLUICE_OTLP_ENDPOINT": "https://otel:4318"}, func(s Settings) string { return s.OTLPEndpoint }, "https://otel:4318"},
		{"trace sample ratio", map[string]string{"SLUICE_TRACE_SAMPLE_RATIO": "0.25"}, func(s Settings) string { return strconv.FormatFloat(s.TraceSampleRatio, 'g', -1, 64) }, "0.25"},
		{"trace sample ratio 0", map[string]string{"SLUICE_TRACE_SAMPLE_RATIO": "0"}, func(s Settings) string { return strconv.FormatFloat(s.TraceSampleRatio, 'g', -1, 64) }, "0"},
		{"user", map[string]string{"SLUICE_NATS_USER": "ann", "SLUICE_NATS_PASSWORD": "pw"}, func(s Settings) string { return s.NATS.User + "/" + s.NATS.Password }, "ann/pw"},
		{"token", map[string]string{"SLUICE_NATS_TOKEN": "t0k"}, func(s Settings) string { return s.NATS.Token }, "t0k"},
		{"creds", map[string]string{"SLUICE_NATS_CREDS_FILE": "/x.creds"}, func(s Settings) string { return s.NATS.CredsFile }, "/x.creds"},
		{"nkey", map[string]string{"SLUICE_NATS_NKEY_SEED_FILE": "/x.nk"}, func(s Settings) string { return s.NATS.NKeySeedFile }, "/x.nk"},
		{"tls", map[string]string{"SLUICE_NATS_TLS_CA": "ca", "SLUICE_NATS_TLS_CERT": "c", "SLUICE_NATS_TLS_KEY": "k"}, func(s Settings) string { return s.NATS.TLSCA + "/" + s.NATS.TLSCert + "/" + s.NATS.TLSKey }, "ca/c/k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inEmptyDir(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			s, err := Load(NewViper(), "")
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.want(s); got != tt.val {
				t.Errorf("got %q, want %q", got, tt.val)
			}
		})
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := inEmptyDir(t)
	path := writeFile(t, dir, "other.yaml", `
nats_url: nats://a:4222,nats://b:4222
store_dir: /data/sluice
log_level: warn
log_format: text
gc_percent: 250
memory_limit: 1GiB
shutdown_timeout: 1m
progress_interval: 30s
allow_env: [TEAM_, SLUICE_VAR_]
allow_exec: true
data_dir: /srv/sluice
otlp_endpoint: http://otel:4318
trace_sample_ratio: 0.5
nats:
  user: ann
  password: secret
  tls_ca: /etc/ca.pem
`)
	s, err := Load(NewViper(), path)
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		NATSURL:     "nats://a:4222,nats://b:4222",
		StoreDir:    "/data/sluice",
		LogLevel:    "warn",
		LogFormat:   "text",
		GCPercent:   250,
		MemoryLimit: "1GiB",
		NATS:        NATSAuth{User: "ann", Password: "secret", TLSCA: "/etc/ca.pem"},

		ShutdownTimeout:  time.Minute,
		ProgressInterval: 30 * time.Second,
		LeaseTTL:         DefaultLeaseTTL,
		AllowEnv:         []string{"TEAM_", "SLUICE_VAR_"},
		AllowExec:        true,
		DataDir:          "/srv/sluice",

		OTLPEndpoint:     "http://otel:4318",
		TraceSampleRatio: 0.5,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v, want %+v", s, want)
	}
}

func TestLoadConfigFileDiscovery(t *testing.T) {
	dir := inEmptyDir(t)
	writeFile(t, dir, DefaultConfigFile, "log_level: error\n")
	s, err := Load(NewViper(), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.LogLevel != "error" {
		t.Errorf("log level %q: ./sluice.yaml was not read", s.LogLevel)
	}
}

func TestLoadConfigFileWithoutExtension(t *testing.T) {
	dir := inEmptyDir(t)
	path := writeFile(t, dir, "sluicerc", "log_level: debug\n")
	s, err := Load(NewViper(), path)
	if err != nil {
		t.Fatal(err)
	}
	if s.LogLevel != "debug" {
		t.Errorf("log level %q, want debug", s.LogLevel)
	}
}

func TestLoadMissingConfigFile(t *testing.T) {
	dir := inEmptyDir(t)
	_, err := Load(NewViper(), filepath.Join(dir, "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want an error matching fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name string
		file string // log_level in the config file
		env  string // SLUICE_LOG_LEVEL
		flag string // --log-level
		want string
	}{
		{name: "default", want: "info"},
		{name: "file over default", file: "warn", want: "warn"},
		{name: "env over file", file: "warn", env: "error", want: "error"},
		{name: "flag over env", file: "warn", env: "error", flag: "debug", want: "debug"},
		{name: "flag over file", file: "warn", flag: "debug", want: "debug"},
		{name: "flag over default", flag: "error", want: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := inEmptyDir(t)
			config := ""
			if tt.file != "" {
				config = writeFile(t, dir, "c.yaml", "log_level: "+tt.file+"\n")
			}
			if tt.env != "" {
				t.Setenv("SLUICE_LOG_LEVEL", tt.env)
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			fs.String("log-level", "", "")
			var args []string
			if tt.flag != "" {
				args = []string{"--log-level", tt.flag}
			}
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			v := NewViper()
			if err := v.BindPFlag("log_level", fs.Lookup("log-level")); err != nil {
				t.Fatal(err)
			}
			s, err := Load(v, config)
			if err != nil {
				t.Fatal(err)
			}
			if s.LogLevel != tt.want {
				t.Errorf("log level %q, want %q", s.LogLevel, tt.want)
			}
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		want []string // substrings of the error
	}{
		{name: "log level", env: map[string]string{"SLUICE_LOG_LEVEL": "loud"},
			want: []string{`log_level must be one of debug, info, warn, error (got "loud")`}},
		{name: "log format", file: "log_format: xml\n",
			want: []string{`log_format must be one of auto, text, json (got "xml")`}},
		{name: "every problem at once", env: map[string]string{"SLUICE_LOG_LEVEL": "loud", "SLUICE_LOG_FORMAT": "xml"},
			want: []string{`log_level`, `log_format`}},
		{name: "gc percent", env: map[string]string{"SLUICE_GC_PERCENT": "5"},
			want: []string{`gc_percent must be -1 (off) or at least 10 (got 5)`}},
		{name: "memory limit", env: map[string]string{"SLUICE_MEMORY_LIMIT": "lots"},
			want: []string{`memory_limit must be auto, off or a size of at least 32 MiB such as 512MiB (got "lots")`}},
		{name: "memory limit too small", file: "memory_limit: 1MiB\n",
			want: []string{`memory_limit must be auto, off or a size of at least 32 MiB`, `"1MiB"`}},
		{name: "shutdown timeout", env: map[string]string{"SLUICE_SHUTDOWN_TIMEOUT": "0s"},
			want: []string{`shutdown_timeout must be > 0 (got 0s)`}},
		{name: "progress interval", file: "progress_interval: 0s\n",
			want: []string{`progress_interval must be > 0 (got 0s)`}},
		{name: "sync", env: map[string]string{"SLUICE_SYNC": "sometimes"},
			want: []string{`sync must be "always" or a duration > 0 such as 1s (got "sometimes")`}},
		{name: "sync zero", file: "sync: 0s\n",
			want: []string{`sync must be "always"`}},
		{name: "unknown key", file: "log_levl: debug\n",
			want: []string{`unknown key "log_levl"`}},
		{name: "unknown nested key", file: "nats:\n  usr: ann\n",
			want: []string{`unknown key "nats.usr"`}},
		{name: "listen", env: map[string]string{"SLUICE_LISTEN": "4222"},
			want: []string{`listen must be host:port`, `"4222"`}},
		{name: "listen port", env: map[string]string{"SLUICE_LISTEN": "localhost:99999"},
			want: []string{`listen must be host:port`}},
		{name: "url scheme", env: map[string]string{"SLUICE_NATS_URL": "http://a:4222"},
			want: []string{`nats_url: URL 1 must use one of the schemes nats, tls, ws, wss (got "http://a:4222")`}},
		{name: "url password not shown", env: map[string]string{"SLUICE_NATS_URL": "nats://a:4222,http://ann:s3cret@b:4222"},
			want: []string{`URL 2`, `ann:xxxxx@b`}},
		{name: "creds and token", env: map[string]string{"SLUICE_NATS_CREDS_FILE": "x.creds", "SLUICE_NATS_TOKEN": "t"},
			want: []string{`nats.creds_file, nats.token conflict`}},
		{name: "user and nkey", file: "nats:\n  user: ann\n  nkey_seed_file: x.nk\n",
			want: []string{`nats.nkey_seed_file, nats.user conflict`}},
		{name: "password alone", env: map[string]string{"SLUICE_NATS_PASSWORD": "pw"},
			want: []string{`nats.password needs nats.user`}},
		{name: "cert without key", env: map[string]string{"SLUICE_NATS_TLS_CERT": "c.pem"},
			want: []string{`nats.tls_cert and nats.tls_key go together`}},
		{name: "trace sample ratio", env: map[string]string{"SLUICE_TRACE_SAMPLE_RATIO": "1.5"},
			want: []string{`trace_sample_ratio must be between 0 and 1 (got 1.5)`}},
		{name: "otlp endpoint", file: "otlp_endpoint: localhost:4318\n",
			want: []string{`otlp_endpoint must be an http:// or https:// URL`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := inEmptyDir(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			config := ""
			if tt.file != "" {
				config = writeFile(t, dir, "c.yaml", tt.file)
			}
			_, err := Load(NewViper(), config)
			if !errors.Is(err, ErrInvalidSettings) {
				t.Fatalf("got %v, want an error matching ErrInvalidSettings", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows a password", err)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	s := Settings{
		NATSURL: "nats://ann:pw@a:4222,nats://t0k@b:4222,nats://c:4222",
		NATS:    NATSAuth{User: "ann", Password: "pw", Token: "t0k"},
	}
	r := s.Redacted()
	if r.NATS.Password != "[redacted]" || r.NATS.Token != "[redacted]" || r.NATS.User != "ann" {
		t.Errorf("redacted auth %+v", r.NATS)
	}
	if want := "nats://ann:xxxxx@a:4222,nats://xxxxx@b:4222,nats://c:4222"; r.NATSURL != want {
		t.Errorf("redacted URL %q, want %q", r.NATSURL, want)
	}
	if s.NATS.Password != "pw" {
		t.Error("Redacted changed the original")
	}
	if empty := (Settings{}).Redacted(); empty.NATS.Password != "" || empty.NATS.Token != "" {
		t.Errorf("unset secrets became %+v", empty.NATS)
	}
}

func TestSyncOptions(t *testing.T) {
	for _, tt := range []struct {
		sync     string
		interval time.Duration
		always   bool
	}{
		{"", 0, false},
		{"always", 0, true},
		{"1s", time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
	} {
		interval, always, err := Settings{Sync: tt.sync}.SyncOptions()
		if err != nil || interval != tt.interval || always != tt.always {
			t.Errorf("sync %q: %s, %v, %v; want %s, %v", tt.sync, interval, always, err, tt.interval, tt.always)
		}
	}
}
