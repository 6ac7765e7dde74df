// Package cli implements the sluice command line: the cobra commands, the
// binding of their flags to the runtime settings of package configs, and
// the exit codes. cmd/sluice calls [Main].
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/sluicehq/sluice/configs"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
	"github.com/sluicehq/sluice/stages"
	"github.com/sluicehq/sluice/stages/builtin"
)

// Exit codes of [Main].
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // a pipeline or runtime failure
	ExitUsage   = 2 // a usage, settings or validation error
)

// exitError gives an error its exit code. A nil err means that the cause
// was already printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// failure marks err as a runtime failure (exit 1). Errors not marked are
// usage or validation errors (exit 2). failure(nil) is nil.
func failure(err error) error {
	if err == nil {
		return nil
	}
	if ee, ok := err.(*exitError); ok {
		return ee // its code stands
	}
	return &exitError{code: ExitFailure, err: err}
}

// errReported is returned after printing the problems of pipeline files.
var errReported = &exitError{code: ExitUsage}

// app is the state shared by the commands of one invocation.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	reg            *stages.Registry
	v              *viper.Viper
	configFile     string
	plugins        []string         // --plugin files
	settings       configs.Settings // set by loadSettings
	log            *slog.Logger     // set by loadSettings
	fresh          bool             // run --fresh: the embedded server removes its store first
	insecure       bool             // run --insecure: the embedded server may listen beyond loopback without authentication
	quiet          bool             // run --quiet: no progress display
	// started are called, in order, with each job of run once its stages
	// run, and stopped with a pipeline's name once its run has ended: the
	// hooks of what watches a run (metrics, status, progress).
	started []func(*runner.Job)
	stopped []func(pipeline string)
}

// Main runs the sluice command line with args (without the program name)
// and returns the exit code: [ExitOK], [ExitFailure] or [ExitUsage].
// Pipeline data goes to stdout; errors, logs and run summaries to stderr.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return MainContext(context.Background(), args, stdin, stdout, stderr)
}

// registerBuiltins adds the built-in stage types to [stages.Default], the
// registry of the CLI, once per process: Go plugins add theirs to it too.
var registerBuiltins = sync.OnceValue(func() error { return builtin.Register(stages.Default) })

// MainContext is [Main] with a context: when it is done, a run stops as
// it does on SIGTERM.
func MainContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if err := registerBuiltins(); err != nil {
		fmt.Fprintf(stderr, "sluice: built-in stage types: %v\n", err)
		return ExitFailure
	}
	a := &app{
		stdin:  stdin,
		stdout: syncWriter(stdout),
		stderr: syncWriter(stderr),
		reg:    stages.Default,
		v:      configs.NewViper(),
	}
	root := a.rootCmd()
	if args == nil {
		args = []string{} // cobra reads os.Args for nil
	}
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitUsage
	var ee *exitError
	if errors.As(err, &ee) {
		code, err = ee.code, ee.err
	}
	if err != nil {
		a.printError(err)
	}
	return code
}

// longRunning is the annotation of the commands that run until they are
// stopped, for [StopsCleanly].
const longRunning = "sluice:long-running"

// StopsCleanly reports whether args (without the program name) name a
// command that runs until it is stopped: run, worker or server. Such a
// command stops cleanly when the context of [MainContext] is done, so
// cmd/sluice makes the first SIGINT or SIGTERM do that, from the first
// instant, and leaves the second to kill. Every other command leaves the
// signals their default: the first ends the process at once, whatever it
// is doing.
func StopsCleanly(args []string) bool {
	a := &app{reg: stages.Default, v: configs.NewViper()}
	cmd, _, err := a.rootCmd().Find(args)
	return err == nil && cmd.Annotations[longRunning] != ""
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sluice",
		Short: "Run data pipelines on NATS JetStream",
		Long: `sluice runs data pipelines defined in YAML on NATS JetStream.

Without --nats, "sluice run" starts a NATS server with JetStream inside the
process, storing in --store-dir.

Settings come from flags, then SLUICE_* environment variables (SLUICE_NATS_URL,
SLUICE_STORE_DIR, SLUICE_LISTEN, SLUICE_LOG_LEVEL, SLUICE_LOG_FORMAT, and for
NATS authentication SLUICE_NATS_CREDS_FILE, SLUICE_NATS_USER,
SLUICE_NATS_PASSWORD, SLUICE_NATS_TOKEN, SLUICE_NATS_NKEY_SEED_FILE,
SLUICE_NATS_TLS_CA, SLUICE_NATS_TLS_CERT, SLUICE_NATS_TLS_KEY), then the config
file, then defaults.

Exit status: 0 ok, 1 pipeline or runtime failure, 2 usage or validation error.`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Help()
			return errors.New("missing command")
		},
	}
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		a.bindShared(cmd)
		return a.loadPlugins()
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetVersionTemplate("{{.Version}}\n")

	// Each command has the shared flags that apply to it, and no others,
	// so that its help lists what it uses: a group's (dlq's) go to its
	// subcommands.
	settings := []string{flagConfig, flagLogLevel, flagLogFormat} // every command that reads the settings
	for _, c := range []struct {
		cmd    *cobra.Command
		shared []string
	}{
		{a.runCmd(), append(settings, flagPlugin, flagNATS, flagStoreDir, flagSync)},
		{a.dlqCmd(), append(settings, flagNATS, flagStoreDir, flagSync)},
		{a.serverCmd(), append(settings, flagStoreDir, flagSync)},
		{a.workerCmd(), append(settings, flagPlugin, flagNATS)},
		{a.deployCmd(), append(settings, flagPlugin, flagNATS)},
		{a.undeployCmd(), append(settings, flagNATS)},
		{a.statusCmd(), append(settings, flagNATS, flagStoreDir)},
		{a.tapCmd(), append(settings, flagNATS, flagStoreDir)},
		{a.topCmd(), append(settings, flagNATS, flagStoreDir)},
		{a.validateCmd(), []string{flagPlugin}},
		{a.lintCmd(), []string{flagPlugin}},
		{a.graphCmd(), []string{flagPlugin}},
		{a.stagesCmd(), []string{flagPlugin}},
		{a.schemaCmd(), []string{flagPlugin}},
		{a.versionCmd(), nil},
		{a.testCmd(), append(settings, flagPlugin)}, // settings only with --log-level
	} {
		f := c.cmd.Flags()
		if c.cmd.HasSubCommands() {
			f = c.cmd.PersistentFlags()
		}
		a.sharedFlags(f, c.shared...)
		root.AddCommand(c.cmd)
	}
	root.SetFlagErrorFunc(flagError)
	return root
}

// flagError adds to the error of an unknown flag that is a shared flag of
// other commands which commands take it.
func flagError(cmd *cobra.Command, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return err
	}
	var takers []string
	for _, c := range cmd.Root().Commands() {
		if c.Flags().Lookup(name) != nil || c.PersistentFlags().Lookup(name) != nil {
			takers = append(takers, c.Name())
		}
	}
	if len(takers) == 0 {
		return err
	}
	return fmt.Errorf("%w (a flag of %s, not of %s)", err, strings.Join(takers, ", "), cmd.Name())
}

// The flags that several commands share. Those with a settings key
// (sharedKeys) set it.
const (
	flagConfig    = "config"
	flagPlugin    = "plugin"
	flagNATS      = "nats"
	flagStoreDir  = "store-dir"
	flagSync      = "sync"
	flagLogLevel  = "log-level"
	flagLogFormat = "log-format"
)

// sharedKeys are the settings keys of the shared flags that set one.
var sharedKeys = map[string]string{
	flagNATS:      "nats_url",
	flagStoreDir:  "store_dir",
	flagSync:      "sync",
	flagLogLevel:  "log_level",
	flagLogFormat: "log_format",
}

// sharedFlags adds the shared flags names to f.
func (a *app) sharedFlags(f *pflag.FlagSet, names ...string) {
	for _, name := range names {
		switch name {
		case flagConfig:
			f.StringVar(&a.configFile, name, "", "config file (default ./sluice.yaml if it exists)")
		case flagPlugin:
			f.StringArrayVar(&a.plugins, name, nil, "load stage types from this Go plugin (.so) first; repeatable")
		case flagNATS:
			f.String(name, "", "NATS server URL(s), comma-separated (default: an embedded server)")
		case flagStoreDir:
			f.String(name, "", `JetStream store of the embedded server (default "`+configs.DefaultStoreDir+`")`)
		case flagSync:
			f.String(name, "", `how the embedded server syncs its store to disk: "always" (every write, before it is acknowledged) or an interval (default 2m)`)
		case flagLogLevel:
			f.String(name, "", "log level: "+strings.Join(configs.LogLevels, ", ")+` (default "`+configs.DefaultLogLevel+`")`)
		case flagLogFormat:
			f.String(name, "", "log format: "+strings.Join(configs.LogFormats, ", ")+` (default "`+configs.DefaultLogFormat+`": text on a terminal, else JSON)`)
		default:
			panic("no shared flag " + name) // a typo in rootCmd
		}
	}
}

// bindShared binds the shared flags of cmd, the command that runs, to
// their settings. It is done when the command runs, not when it is made:
// viper keeps one flag per key, and several commands have each flag.
func (a *app) bindShared(cmd *cobra.Command) {
	for name, key := range sharedKeys {
		if f := cmd.Flags().Lookup(name); f != nil {
			a.bind(key, f)
		}
	}
}

// loadPlugins loads the --plugin files into the registry.
func (a *app) loadPlugins() error {
	for _, path := range a.plugins {
		if _, err := a.reg.LoadPlugin(path); err != nil {
			return &exitError{code: ExitUsage, err: err}
		}
	}
	return nil
}

// bind makes flag set the settings key; a flag given wins over the
// environment and the config file.
func (a *app) bind(key string, flag *pflag.Flag) {
	if err := a.v.BindPFlag(key, flag); err != nil {
		panic(fmt.Sprintf("bind flag to %s: %v", key, err)) // a flag name typo
	}
}

// loadSettings reads the settings and makes the logger, for the commands
// that use them. Others, such as help and version, work whatever the
// environment holds.
func (a *app) loadSettings() error {
	s, err := configs.Load(a.v, a.configFile)
	if err != nil {
		return err
	}
	if a.log, err = s.NewLogger(a.stderr); err != nil {
		return err
	}
	a.settings = s
	a.log.Debug("settings", "settings", s.Redacted())
	return nil
}

// printError prints err as "sluice: <error>" on stderr.
func (a *app) printError(err error) {
	msg := strings.TrimPrefix(err.Error(), "sluice: ")
	fmt.Fprintf(a.stderr, "sluice: %s\n", strings.TrimRight(msg, "\n"))
}

// loadPipelines loads and validates every file, under policy if it is not
// nil. It prints every problem of the files that do not validate to
// stderr, one per line, and then returns errReported.
func (a *app) loadPipelines(files []string, policy *pipeline.Policy) ([]*pipeline.Pipeline, error) {
	ps := make([]*pipeline.Pipeline, 0, len(files))
	bad := false
	for _, file := range files {
		p, err := pipeline.Load(file, pipeline.Options{Registry: a.reg, Policy: policy})
		if err != nil {
			a.printLoadError(err)
			bad = true
			continue
		}
		ps = append(ps, p)
	}
	if bad {
		return nil, errReported
	}
	return ps, nil
}

// printLoadError prints the problems of a pipeline file one per line, as
// FILE:LINE:COL: message, or another error of loading it.
func (a *app) printLoadError(err error) {
	var problems pipeline.Problems
	if !errors.As(err, &problems) {
		a.printError(err)
		return
	}
	for _, p := range problems {
		fmt.Fprintln(a.stderr, p.String())
	}
}

// wantFiles accepts at least one argument, each a pipeline file.
func wantFiles(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%s: want at least one pipeline file", cmd.Name())
	}
	return nil
}

// syncWriter makes w safe for concurrent use: stages, logs and summaries
// write to stdout and stderr from several goroutines. An *os.File is
// returned as is, both because it is safe already and so that the logger
// can tell a terminal.
func syncWriter(w io.Writer) io.Writer {
	if _, ok := w.(*os.File); ok {
		return w
	}
	return &lockedWriter{w: w}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
