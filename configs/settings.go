package configs

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/spf13/viper"

	"github.com/sluicehq/sluice/internal/bytesize"
)

// Defaults of [Settings].
const (
	DefaultStoreDir  = ".sluice"
	DefaultLogLevel  = "info"
	DefaultLogFormat = "auto"
	// DefaultGCPercent lets the heap grow to three times what is live
	// before the garbage collector runs again. It was 400 (five times),
	// worth about a tenth more throughput on a hop before memory_limit
	// existed; with the limit, 400 left a small live heap's process at
	// five times it (380–400 MB for a 60 MB live heap) while a large one
	// sits at the limit whatever the percentage. 200 cut the one-hop ETL
	// job's peak RSS by a third for about 6% more CPU (docs/performance.md,
	// "Memory of the ETL job").
	DefaultGCPercent = 200
	// DefaultMemoryLimit is the Go runtime's soft memory limit when
	// memory_limit is "auto" and the process has no cgroup memory limit:
	// the garbage collector runs more often as the process nears it, so
	// that gc_percent's headroom does not let memory grow to several
	// times what is live (see docs/architecture.md, "Memory").
	DefaultMemoryLimit = 384 << 20
	// MemoryLimitAuto and MemoryLimitOff are the memory_limit values that
	// are not sizes: auto is 90% of the cgroup's memory limit when there
	// is one (a container), else [DefaultMemoryLimit]; off is no limit.
	MemoryLimitAuto = "auto"
	MemoryLimitOff  = "off"
	// MinMemoryLimit is the least memory_limit: below it the collector
	// would run all the time.
	MinMemoryLimit = 32 << 20
	// DefaultShutdownTimeout bounds a clean stop after a signal.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultProgressInterval is how often `sluice run` logs the progress
	// of each pipeline when stderr is not a terminal.
	DefaultProgressInterval = 10 * time.Second
	// DefaultLeaseTTL is how long a worker's heartbeat and source leases
	// live without renewal.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultTraceSampleRatio is the share of the records a source reads
	// whose traces are kept, when otlp_endpoint turns tracing on.
	DefaultTraceSampleRatio = 0.01
	// DefaultConfigFile is read by [Load] when no config file is named and
	// it exists in the working directory.
	DefaultConfigFile = "sluice.yaml"
	// EnvPrefix prefixes the environment variable of every key.
	EnvPrefix = "SLUICE"
)

// LogLevels and LogFormats are the values allowed for log_level and
// log_format.
var (
	LogLevels  = []string{"debug", "info", "warn", "error"}
	LogFormats = []string{"auto", "text", "json"}
)

// Settings are the runtime settings of sluice. The zero value is not valid;
// get Settings from [Load].
type Settings struct {
	// NATSURL is the server or cluster to use, one URL or a comma-separated
	// list; empty means an embedded server.
	NATSURL string `mapstructure:"nats_url"`
	// StoreDir is the JetStream store of the embedded server.
	StoreDir string `mapstructure:"store_dir"`
	// Listen is a host:port where the embedded server accepts TCP clients;
	// empty means none (in-process connections only).
	Listen string `mapstructure:"listen"`
	// HTTP is where `sluice run` serves /metrics, /healthz and /readyz:
	// PORT or :PORT (loopback) or HOST:PORT; empty means not at all.
	HTTP string `mapstructure:"http"`
	// HTTPToken, if set, is the bearer token /metrics requires; an HTTP
	// address beyond loopback needs one (or --insecure). A secret.
	HTTPToken string `mapstructure:"http_token"`
	// HTTPTLSCert and HTTPTLSKey, if set, are the PEM certificate and
	// private key the HTTP endpoint (run, worker, server) serves HTTPS
	// with.
	HTTPTLSCert string `mapstructure:"http_tls_cert"`
	HTTPTLSKey  string `mapstructure:"http_tls_key"`
	// Sync is how the embedded server (and `sluice server`) writes its
	// store to disk: "always" syncs every write before acknowledging it,
	// a duration syncs that often, and empty keeps nats-server's default
	// (every 2 minutes). See [Settings.SyncOptions].
	Sync string `mapstructure:"sync"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `mapstructure:"log_level"`
	// LogFormat is text, json, or auto: text on a terminal, JSON otherwise.
	LogFormat string `mapstructure:"log_format"`
	// GCPercent is the garbage collector's target percentage (as GOGC):
	// -1 turns the collector off. The GOGC environment variable, if set,
	// wins over it.
	GCPercent int `mapstructure:"gc_percent"`
	// MemoryLimit is the Go runtime's soft memory limit: a size such as
	// 512MiB, "auto" or "off" (see [MemoryLimitAuto]). The GOMEMLIMIT
	// environment variable, if set, wins over it.
	MemoryLimit string `mapstructure:"memory_limit"`
	// ShutdownTimeout bounds a clean stop after SIGINT or SIGTERM:
	// finishing the batches in hand, flushing and syncing sinks.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// ProgressInterval is how often `sluice run` logs a "progress" line
	// per pipeline when stderr is not a terminal.
	ProgressInterval time.Duration `mapstructure:"progress_interval"`
	// WorkerID names a sluice worker among the cluster's workers; empty
	// means the host name.
	WorkerID string `mapstructure:"worker_id"`
	// LeaseTTL is how long a worker's heartbeat and source leases live
	// without renewal: a worker that dies is known dead, and its sources
	// taken over, after about this long.
	LeaseTTL time.Duration `mapstructure:"lease_ttl"`
	// AllowEnv lists the prefixes of the variables that ${VAR} may read
	// in a deployed pipeline (see pipeline.Policy); empty means
	// SLUICE_VAR_. A worker applies it; deploy checks against it.
	AllowEnv []string `mapstructure:"allow_env"`
	// AllowExec lets deployed pipelines run programs (the exec transform).
	AllowExec bool `mapstructure:"allow_exec"`
	// AllowPlugins lets deployed pipelines load Go plugins (plugins:).
	AllowPlugins bool `mapstructure:"allow_plugins"`
	// DataDir is the directory the file paths of deployed pipelines stay
	// in; empty means the working directory.
	DataDir string `mapstructure:"data_dir"`
	// OTLPEndpoint, if set, turns tracing on: the base URL (http:// or
	// https://) of an OTLP/HTTP receiver, to whose path /v1/traces is
	// added. Empty leaves it to OTEL_EXPORTER_OTLP_ENDPOINT; without
	// either there is no tracing.
	OTLPEndpoint string `mapstructure:"otlp_endpoint"`
	// TraceSampleRatio is the share, 0 to 1, of the records a source
	// begins a trace for whose traces are kept. A record that arrives
	// with a trace context keeps its decision.
	TraceSampleRatio float64 `mapstructure:"trace_sample_ratio"`
	// NATS holds credentials and TLS files for NATSURL.
	NATS NATSAuth `mapstructure:"nats"`
}

// NATSAuth says how to authenticate to a NATS server. At most one of
// CredsFile, NKeySeedFile, Token and User (with Password) may be set. TLS
// settings combine with any of them.
type NATSAuth struct {
	CredsFile    string `mapstructure:"creds_file"`     // a .creds file: user JWT and NKey seed
	User         string `mapstructure:"user"`           // user name, with Password
	Password     string `mapstructure:"password"`       // password of User; a secret
	Token        string `mapstructure:"token"`          // an auth token; a secret
	NKeySeedFile string `mapstructure:"nkey_seed_file"` // a file holding a user NKey seed
	TLSCA        string `mapstructure:"tls_ca"`         // PEM CA certificates to verify the server
	TLSCert      string `mapstructure:"tls_cert"`       // PEM client certificate, with TLSKey
	TLSKey       string `mapstructure:"tls_key"`        // PEM private key of TLSCert
}

// Keys lists every settings key, as used in config files and with
// viper.BindPFlag.
var Keys = []string{
	"nats_url", "store_dir", "listen", "http", "http_token", "sync", "log_level", "log_format", "gc_percent", "memory_limit", "shutdown_timeout", "progress_interval",
	"http_tls_cert", "http_tls_key",
	"worker_id", "lease_ttl", "allow_env", "allow_exec", "allow_plugins", "data_dir",
	"otlp_endpoint", "trace_sample_ratio",
	"nats.creds_file", "nats.user", "nats.password", "nats.token",
	"nats.nkey_seed_file", "nats.tls_ca", "nats.tls_cert", "nats.tls_key",
}

// NewViper returns a viper instance that knows every key, its default and
// its SLUICE_* environment variable. Bind flags into it with BindPFlag
// before calling [Load].
func NewViper() *viper.Viper {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, key := range Keys {
		// Binding every key makes it known to Unmarshal, which sees only
		// the keys it knows; BindEnv fails only without a key.
		_ = v.BindEnv(key)
	}
	v.SetDefault("store_dir", DefaultStoreDir)
	v.SetDefault("log_level", DefaultLogLevel)
	v.SetDefault("log_format", DefaultLogFormat)
	v.SetDefault("gc_percent", DefaultGCPercent)
	v.SetDefault("memory_limit", MemoryLimitAuto)
	v.SetDefault("shutdown_timeout", DefaultShutdownTimeout)
	v.SetDefault("progress_interval", DefaultProgressInterval)
	v.SetDefault("lease_ttl", DefaultLeaseTTL)
	v.SetDefault("trace_sample_ratio", DefaultTraceSampleRatio)
	return v
}

// Load reads the settings from v: flags bound into it, environment, config
// file and defaults. configFile names a YAML config file, which must exist;
// "" means [DefaultConfigFile] in the working directory if it exists, and
// no file otherwise. Settings that do not validate give an error wrapping
// [ErrInvalidSettings].
func Load(v *viper.Viper, configFile string) (Settings, error) {
	if configFile == "" {
		if _, err := os.Stat(DefaultConfigFile); err == nil {
			configFile = DefaultConfigFile
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Settings{}, fmt.Errorf("sluice: config file: %w", err)
		}
	}
	if configFile != "" {
		v.SetConfigFile(configFile)
		if filepath.Ext(configFile) == "" {
			v.SetConfigType("yaml")
		}
		if err := v.ReadInConfig(); err != nil {
			return Settings{}, fmt.Errorf("sluice: read config file %s: %w", configFile, err)
		}
		if unknown := unknownKeys(v); len(unknown) > 0 {
			return Settings{}, fmt.Errorf("%w: config file %s: unknown key %s (want %s)",
				ErrInvalidSettings, configFile, strings.Join(unknown, ", "), strings.Join(Keys, ", "))
		}
	}
	var s Settings
	if err := v.Unmarshal(&s); err != nil {
		return Settings{}, fmt.Errorf("%w: %w", ErrInvalidSettings, err)
	}
	s.setDefaults()
	if err := s.Validate(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// unknownKeys returns the keys of v's config file that are not settings.
func unknownKeys(v *viper.Viper) []string {
	var out []string
	for _, key := range v.AllKeys() {
		if !slices.Contains(Keys, key) {
			out = append(out, strconv.Quote(key))
		}
	}
	slices.Sort(out)
	return out
}

// setDefaults fills in what is empty and normalises the case of names.
func (s *Settings) setDefaults() {
	if s.StoreDir == "" {
		s.StoreDir = DefaultStoreDir
	}
	s.LogLevel = strings.ToLower(strings.TrimSpace(s.LogLevel))
	if s.LogLevel == "" {
		s.LogLevel = DefaultLogLevel
	}
	s.LogFormat = strings.ToLower(strings.TrimSpace(s.LogFormat))
	if s.LogFormat == "" {
		s.LogFormat = DefaultLogFormat
	}
	s.MemoryLimit = strings.TrimSpace(s.MemoryLimit)
	if s.MemoryLimit == "" {
		s.MemoryLimit = MemoryLimitAuto
	}
}

// Validate checks every setting and reports all problems at once in an
// error wrapping [ErrInvalidSettings], each naming the key and its value
// (secrets left out).
func (s Settings) Validate() error {
	var problems []string
	if !slices.Contains(LogLevels, s.LogLevel) {
		problems = append(problems, fmt.Sprintf("log_level must be one of %s (got %q)", strings.Join(LogLevels, ", "), s.LogLevel))
	}
	if s.GCPercent != -1 && s.GCPercent < 10 {
		problems = append(problems, fmt.Sprintf("gc_percent must be -1 (off) or at least 10 (got %d)", s.GCPercent))
	}
	if _, err := s.memoryLimit(); err != nil {
		problems = append(problems, err.Error())
	}
	if s.ShutdownTimeout <= 0 {
		problems = append(problems, fmt.Sprintf("shutdown_timeout must be > 0 (got %s)", s.ShutdownTimeout))
	}
	if s.ProgressInterval <= 0 {
		problems = append(problems, fmt.Sprintf("progress_interval must be > 0 (got %s)", s.ProgressInterval))
	}
	if s.LeaseTTL < time.Second {
		problems = append(problems, fmt.Sprintf("lease_ttl must be at least 1s (got %s)", s.LeaseTTL))
	}
	if !slices.Contains(LogFormats, s.LogFormat) {
		problems = append(problems, fmt.Sprintf("log_format must be one of %s (got %q)", strings.Join(LogFormats, ", "), s.LogFormat))
	}
	if s.StoreDir == "" {
		problems = append(problems, "store_dir must not be empty")
	}
	if _, _, err := s.SyncOptions(); err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, checkURLs(s.NATSURL)...)
	if s.Listen != "" {
		if _, port, err := net.SplitHostPort(s.Listen); err != nil || !validPort(port) {
			problems = append(problems, fmt.Sprintf("listen must be host:port with a port from 0 to 65535 (got %q)", s.Listen))
		}
	}
	problems = append(problems, s.NATS.check()...)
	if s.TraceSampleRatio < 0 || s.TraceSampleRatio > 1 || math.IsNaN(s.TraceSampleRatio) {
		problems = append(problems, fmt.Sprintf("trace_sample_ratio must be between 0 and 1 (got %g)", s.TraceSampleRatio))
	}
	if s.OTLPEndpoint != "" {
		if u, err := url.Parse(s.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, "otlp_endpoint must be an http:// or https:// URL such as http://localhost:4318")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSettings, strings.Join(problems, "; "))
	}
	return nil
}

func validPort(port string) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// urlSchemes are the schemes nats.go dials.
var urlSchemes = []string{"nats", "tls", "ws", "wss"}

// checkURLs checks a comma-separated list of server URLs as nats.Connect
// takes it; a URL without a scheme means nats://. Problems never show a
// password.
func checkURLs(list string) []string {
	if strings.TrimSpace(list) == "" {
		return nil
	}
	var problems []string
	for i, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("nats_url: URL %d is not a valid URL", i+1))
		case !slices.Contains(urlSchemes, u.Scheme):
			problems = append(problems, fmt.Sprintf("nats_url: URL %d must use one of the schemes %s (got %q)", i+1, strings.Join(urlSchemes, ", "), redactURL(u)))
		case u.Hostname() == "":
			problems = append(problems, fmt.Sprintf("nats_url: URL %d has no host (got %q)", i+1, redactURL(u)))
		}
	}
	return problems
}

// check reports conflicting or incomplete auth settings.
func (a NATSAuth) check() []string {
	var problems []string
	var kinds []string
	for _, k := range []struct{ key, value string }{
		{"nats.creds_file", a.CredsFile},
		{"nats.nkey_seed_file", a.NKeySeedFile},
		{"nats.token", a.Token},
		{"nats.user", a.User},
	} {
		if k.value != "" {
			kinds = append(kinds, k.key)
		}
	}
	if len(kinds) > 1 {
		problems = append(problems, fmt.Sprintf("%s conflict: set only one way to authenticate", strings.Join(kinds, ", ")))
	}
	if a.Password != "" && a.User == "" {
		problems = append(problems, "nats.password needs nats.user")
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		problems = append(problems, fmt.Sprintf("nats.tls_cert and nats.tls_key go together (got tls_cert %q, tls_key %q)", a.TLSCert, a.TLSKey))
	}
	return problems
}

// redacted replaces a secret that is set.
const redacted = "[redacted]"

// Redacted returns a copy of s that is safe to log: the password and token
// are replaced by "[redacted]" when set, and credentials in NATSURL by
// "xxxxx".
func (s Settings) Redacted() Settings {
	if s.NATS.Password != "" {
		s.NATS.Password = redacted
	}
	if s.NATS.Token != "" {
		s.NATS.Token = redacted
	}
	if s.NATSURL != "" {
		urls := strings.Split(s.NATSURL, ",")
		for i, raw := range urls {
			if u, err := url.Parse(strings.TrimSpace(raw)); err == nil {
				urls[i] = redactURL(u)
			}
		}
		s.NATSURL = strings.Join(urls, ",")
	}
	return s
}

// redactURL returns u with its password, or a user part that may be a
// token, replaced by "xxxxx".
func redactURL(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	if _, ok := u.User.Password(); ok {
		return u.Redacted()
	}
	r := *u
	r.User = url.User("xxxxx")
	return r.String()
}

// ApplyGC sets the garbage collector's target percentage to GCPercent,
// unless the GOGC environment variable is set, and returns the percentage
// in effect (-1: off).
func (s Settings) ApplyGC() int {
	if os.Getenv("GOGC") != "" {
		old := debug.SetGCPercent(100)
		debug.SetGCPercent(old)
		return old
	}
	debug.SetGCPercent(s.GCPercent)
	return s.GCPercent
}

// memoryLimit returns the limit memory_limit gives in bytes: 0 for auto,
// -1 for off.
func (s Settings) memoryLimit() (int64, error) {
	switch strings.ToLower(s.MemoryLimit) {
	case MemoryLimitAuto, "":
		return 0, nil
	case MemoryLimitOff:
		return -1, nil
	}
	n, err := bytesize.Parse(s.MemoryLimit)
	if err != nil || n < MinMemoryLimit {
		return 0, fmt.Errorf("memory_limit must be auto, off or a size of at least %s such as 512MiB (got %q)",
			bytesize.MiB(MinMemoryLimit), s.MemoryLimit)
	}
	return n, nil
}

// CheckMemoryLimit reports whether memory_limit is valid, as [Load] checks
// it.
func (s Settings) CheckMemoryLimit() error {
	_, err := s.memoryLimit()
	return err
}

// ApplyMemoryLimit sets the Go runtime's soft memory limit from
// memory_limit, unless the GOMEMLIMIT environment variable is set, and
// returns the limit in effect in bytes (-1: none) and where it comes from:
// "GOMEMLIMIT", "memory_limit", "cgroup" (auto, 90% of the cgroup's
// limit) or "default" (auto, [DefaultMemoryLimit]). Settings from [Load]
// are valid; ApplyMemoryLimit of invalid ones sets the default.
func (s Settings) ApplyMemoryLimit() (int64, string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return limitInEffect(debug.SetMemoryLimit(-1)), "GOMEMLIMIT"
	}
	n, err := s.memoryLimit()
	switch {
	case err == nil && n < 0:
		debug.SetMemoryLimit(math.MaxInt64)
		return -1, "memory_limit"
	case err == nil && n > 0:
		debug.SetMemoryLimit(n)
		return n, "memory_limit"
	}
	if c, err := memlimit.FromCgroup(); err == nil && c > 0 && c < math.MaxInt64 {
		n := max(int64(float64(c)*0.9), MinMemoryLimit)
		debug.SetMemoryLimit(n)
		return n, "cgroup"
	}
	debug.SetMemoryLimit(DefaultMemoryLimit)
	return DefaultMemoryLimit, "default"
}

// limitInEffect is n, or -1 for the runtime's "no limit".
func limitInEffect(n int64) int64 {
	if n == math.MaxInt64 {
		return -1
	}
	return n
}

// SyncAlways is the value of the sync setting that syncs every write.
const SyncAlways = "always"

// SyncOptions returns what the sync setting asks of the server: always
// true to sync every write before it is acknowledged, else the interval
// between syncs (0: nats-server's default, 2 minutes).
func (s Settings) SyncOptions() (interval time.Duration, always bool, err error) {
	switch s.Sync {
	case "":
		return 0, false, nil
	case SyncAlways:
		return 0, true, nil
	}
	d, err := time.ParseDuration(s.Sync)
	if err != nil || d <= 0 {
		return 0, false, fmt.Errorf("sync must be %q or a duration > 0 such as 1s (got %q)", SyncAlways, s.Sync)
	}
	return d, false, nil
}
