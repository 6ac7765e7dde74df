package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cluster"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runner"
)

// clusterHelp is the part of the cluster commands' help they share.
const clusterHelp = `
The cluster commands need a NATS server or cluster with JetStream: --nats URL
or SLUICE_NATS_URL (sluice server starts one). The control plane lives in
NATS itself: the sluice_pipelines bucket holds the deployed pipelines,
sluice_workers the workers' heartbeats and sluice_leases which worker runs
each source.`

// policyHelp is the part of the worker's and deploy's help about what
// deployed pipelines may do.
const policyHelp = `

A deployed pipeline is someone else's code to a worker, so a worker runs it
under a policy (settings allow_env, allow_exec, allow_plugins and data_dir,
or the flags below): ${VAR} reads only variables whose names begin with
SLUICE_VAR_ (or the prefixes of --allow-env, which replace it), also with a
:-default; exec stages run only with --allow-exec and plugins: load only
with --allow-plugins; every file path (file source and sink, a NATS creds
file, an exec dir, a SQLite database, a plugin) resolves under --data-dir
(default: the worker's working directory): a relative path is taken from it,
and a path that leaves it (by "..", an absolute path, or on the worker a
symbolic link) is refused. The worker refuses a pipeline that breaks its
policy, saying why in "sluice status", and runs the others.`

func (a *app) deployCmd() *cobra.Command {
	var bindPolicy func()
	cmd := &cobra.Command{
		Use:   "deploy FILE...",
		Short: "Validate pipelines and deploy them to the cluster's workers",
		Long: `Deploy validates each pipeline file, provisions its streams and consumers, and
stores it as the next version of its deployment. Every "sluice worker" runs
the latest version of each deployed pipeline: a new version is taken up
without a restart, the workers of the old one finishing their batches first,
and nothing is lost across the switch.

A deploy starts a new run of the pipeline, whose sources read from the
beginning, unless its latest run has not finished: then the new version
carries it on from the sources' checkpoints. ${VAR} references are resolved
by each worker, in its own environment, so secrets need not be stored in
NATS.

Deploy validates each file under the policy its settings give, the same
settings a worker uses (give it the workers' config file, or the same
flags), so that what the workers would refuse is refused here at once, as
FILE:LINE:COL: problems: with the defaults, variables beginning with
SLUICE_VAR_ only, no exec, no plugins, paths under the working directory.
Paths are checked by their text only here; the worker also follows their
symbolic links.` + policyHelp + clusterHelp,
		Args: wantFiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			bindPolicy()
			return a.withCluster(cmd.Context(), false, func(ctx context.Context, c *conn) error {
				policy := a.policy()
				policy.Lexical = true // the workers' file system is not this one
				ps, err := a.loadPipelines(args, &policy)
				if err != nil {
					return err
				}
				if err := uniqueNames(ps); err != nil {
					return err
				}
				for _, p := range ps {
					spec, err := os.ReadFile(p.File)
					if err != nil {
						return failure(err)
					}
					d, err := cluster.Deploy(ctx, c.nc, p, spec)
					if err != nil {
						return failure(err)
					}
					fmt.Fprintf(a.stdout, "deployed pipeline %s version %d (run %d)\n", d.Name, d.Version, d.Run)
				}
				return nil
			})
		},
	}
	bindPolicy = a.policyFlags(cmd)
	return cmd
}

// policyFlags adds the flags of the policy of deployed pipelines to cmd
// and returns the function that binds them to their settings, which cmd
// calls when it runs: viper keeps one flag per key, and both worker and
// deploy have these.
func (a *app) policyFlags(cmd *cobra.Command) (bind func()) {
	f := cmd.Flags()
	f.StringSlice("allow-env", nil, `prefixes of the variables ${VAR} may read in deployed pipelines, comma-separated, replacing the default (default "`+pipeline.DefaultAllowEnvPrefix+`")`)
	f.Bool("allow-exec", false, "let deployed pipelines run programs (exec stages)")
	f.Bool("allow-plugins", false, "let deployed pipelines load Go plugins (plugins:)")
	f.String("data-dir", "", "the directory file paths of deployed pipelines resolve under and stay in (default: the working directory)")
	return func() {
		a.bind("allow_env", f.Lookup("allow-env"))
		a.bind("allow_exec", f.Lookup("allow-exec"))
		a.bind("allow_plugins", f.Lookup("allow-plugins"))
		a.bind("data_dir", f.Lookup("data-dir"))
	}
}

// policy returns the policy of deployed pipelines that the settings give.
func (a *app) policy() pipeline.Policy {
	s := a.settings
	return pipeline.Policy{AllowEnv: s.AllowEnv, AllowExec: s.AllowExec, AllowPlugins: s.AllowPlugins, DataDir: s.DataDir}
}

func (a *app) undeployCmd() *cobra.Command {
	var purge bool
	cmd := &cobra.Command{
		Use:   "undeploy NAME",
		Short: "Stop a deployed pipeline on every worker",
		Long: `Undeploy removes a pipeline's deployment: every worker stops it cleanly, its
sources storing their checkpoints. What its streams hold stays, and deploying
it again carries its unfinished run on. With --purge, once the workers have
stopped it (or after a minute), its streams, dead letters, run record,
checkpoints and its stages' state in NATS (dedupe buckets, rate_limit keys)
are deleted too.` + clusterHelp,
		Args: wantPipelineName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withCluster(cmd.Context(), false, func(ctx context.Context, c *conn) error {
				err := cluster.Undeploy(ctx, c.nc, args[0], cluster.UndeployOptions{Purge: purge})
				if err != nil {
					return failure(err)
				}
				what := "undeployed"
				if purge {
					what = "undeployed and purged"
				}
				fmt.Fprintf(a.stdout, "%s pipeline %s\n", what, args[0])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&purge, "purge", false, "also delete the pipeline's streams, dead letters and state")
	return cmd
}

func (a *app) workerCmd() *cobra.Command {
	var patterns []string
	var bindPolicy, bindHTTP, bindTracing func()
	cmd := &cobra.Command{
		Use:         "worker",
		Annotations: map[string]string{longRunning: "true"},
		Short:       "Join the cluster and run the deployed pipelines",
		Long: `Worker joins the cluster: it registers a heartbeat in sluice_workers under its
--id, runs every deployed pipeline (or the stages that --stages matches), and
follows the deployments until SIGINT or SIGTERM, starting, switching and
stopping pipelines as they are deployed and undeployed.

Every worker runs replicas workers of each transform and sink stage on the
stage's durable consumers, so more worker processes, on this host or others,
share the stage's work. A source that reads one thing (a file, generate) runs
on one worker at a time: the worker that holds its lease in sluice_leases. If
that worker dies, another takes the source over from its checkpoint once the
lease expires (--lease-ttl). A file sink another worker writes waits the same
way, unless its path holds {worker}.

--id must be stable across restarts and unique among live workers; a worker
started again after kill -9 waits for its old heartbeat to expire.` + policyHelp + clusterHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bindPolicy()
			// Bound when the command runs: run has the flag too, and viper
			// keeps one flag per key.
			a.bind("shutdown_timeout", cmd.Flags().Lookup("shutdown-timeout"))
			bindHTTP()
			bindTracing()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			context.AfterFunc(ctx, stop) // a second signal kills
			return a.withCluster(ctx, true, func(ctx context.Context, c *conn) error {
				s := a.settings
				defer a.tuneMemory()()
				tracer, stopTracing, err := a.startTracing(ctx, nil, cmp.Or(s.WorkerID, runner.DefaultWorkerID()))
				if err != nil {
					return err
				}
				defer stopTracing()
				wo := cluster.WorkerOptions{
					ID:          s.WorkerID,
					Stages:      patterns,
					LeaseTTL:    s.LeaseTTL,
					Policy:      a.policy(),
					Registry:    a.reg,
					Logger:      a.log,
					Stdin:       a.stdin,
					Stdout:      a.stdout,
					StopTimeout: s.ShutdownTimeout,
					Tracer:      tracer,
				}
				stopHTTP, err := a.workerHTTP(ctx, &wo)
				if err != nil {
					return err
				}
				defer stopHTTP()
				err = cluster.RunWorker(ctx, c.nc, wo)
				if errors.Is(err, runner.ErrInvalidOption) {
					return err
				}
				return failure(err)
			})
		},
	}
	cmd.Flags().StringSliceVar(&patterns, "stages", nil, `run only the stages matching these patterns (comma-separated; "stage" or "pipeline.stage", with * and ?)`)
	cmd.Flags().String("id", "", "this worker's stable name (default: the host name)")
	a.bind("worker_id", cmd.Flags().Lookup("id"))
	cmd.Flags().Duration("lease-ttl", 0, "how long heartbeats and source leases live without renewal, when this worker creates their buckets (default 10s)")
	a.bind("lease_ttl", cmd.Flags().Lookup("lease-ttl"))
	cmd.Flags().Duration("shutdown-timeout", 0, "how long a stop after SIGINT or SIGTERM may take (default 30s)")
	bindHTTP = a.httpFlags(cmd, "/metrics (Prometheus, each stage labelled with the worker), /healthz, /readyz and a status page at / (its data at /api/status)")
	bindTracing = a.tracingFlags(cmd)
	cmd.Flags().BoolVar(&a.insecure, "insecure", false, "let --http beyond loopback serve without http_token")
	bindPolicy = a.policyFlags(cmd)
	return cmd
}

func (a *app) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show the deployed pipelines, their stages and the live workers",
		Long: `Status prints, for each deployed pipeline (or only NAME), its version and
run, and per stage: the workers running it and standing by, the messages
pending in its input streams, awaiting acknowledgement and redelivered, its
dead letters, and its rate over the last minute, all workers together. Then
the live workers. --json prints the same as JSON.

Without --nats (or SLUICE_NATS_URL), status shows the "sluice run" that holds
the store (--store-dir) instead, through the private endpoint it records
there: its pipelines, and per stage what this run took in, sent and failed
on, its backlog and dead letters.` + clusterHelp,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return a.withRun(cmd.Context(), func(ctx context.Context, c *conn) error {
				st, err := status(ctx, c, name)
				if err != nil {
					return failure(err)
				}
				if asJSON {
					enc := json.NewEncoder(a.stdout)
					enc.SetIndent("", "  ")
					return failure(enc.Encode(st))
				}
				return failure(writeStatus(a, st))
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// withCluster is withNATS for the commands that need a NATS server of
// their own: an embedded one would end with the command.
func (a *app) withCluster(ctx context.Context, patient bool, fn func(context.Context, *conn) error) error {
	if err := a.loadSettings(); err != nil {
		return err
	}
	if a.settings.NATSURL == "" {
		return errors.New("this command needs a NATS server: give --nats URL or set SLUICE_NATS_URL (sluice server starts one)")
	}
	return a.withNATS(ctx, patient, fn)
}

// writeStatus prints a status as tables on stdout.
func writeStatus(a *app, st *cluster.StatusReport) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	if len(st.Pipelines) == 0 {
		if len(st.Workers) == 1 && st.Workers[0].ID == cluster.LocalWorker {
			fmt.Fprintln(tw, "no pipeline running yet")
		} else {
			fmt.Fprintln(tw, "no pipeline deployed")
		}
	}
	for _, ps := range st.Pipelines {
		d := ps.Deployment
		if cluster.IsLocal(d) {
			fmt.Fprintf(tw, "pipeline %s  run %d %s  local run started %s from %s on %s\n",
				d.Name, d.Run, ps.RunState, d.Deployed.Format(time.RFC3339), d.File, d.Host)
		} else {
			fmt.Fprintf(tw, "pipeline %s  version %d  run %d %s  deployed %s%s from %s on %s\n",
				d.Name, d.Version, d.Run, ps.RunState, d.Deployed.Format(time.RFC3339), deployedBy(d), d.File, d.Host)
		}
		fmt.Fprintln(tw, "STAGE\tROLE\tTYPE\tWORKERS\tSTANDBY\tIN\tOUT\tERRORS\tPENDING\tACK PENDING\tREDELIVERED\tDEAD LETTERS\tRATE/S")
		for _, s := range ps.Stages {
			pending, ack, redelivered := "-", "-", "-"
			switch {
			case s.Unknown != "":
				pending, ack, redelivered = "?", "?", "?"
			case len(s.Inputs) > 0:
				pending, ack, redelivered = fmt.Sprint(s.Pending), fmt.Sprint(s.AckPending), fmt.Sprint(s.Redelivered)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%.1f\n", s.Name, s.Role, s.Type,
				orDash(s.Workers), orDash(s.Standby), s.In, s.Out, s.Errors, pending, ack, redelivered, s.DeadLetters, s.Rate)
		}
		for _, s := range ps.Stages {
			if s.Unknown != "" {
				fmt.Fprintf(tw, "stage %s: not known now: %s\n", s.Name, s.Unknown)
			}
			for _, h := range s.Held {
				fmt.Fprintf(tw, "stage %s: held on %s since %s (%s): destination unavailable: %s\n",
					s.Name, h.Worker, h.Since.Format(time.RFC3339), time.Since(h.Since).Round(time.Second), h.Error)
			}
		}
		for _, e := range ps.Errors {
			fmt.Fprintf(tw, "error: %s\n", e)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "WORKER\tHOST\tPID\tUP\tPIPELINES")
	for _, w := range st.Workers {
		var ps []string
		for _, p := range w.Pipelines {
			if p.Version == 0 { // a local run
				ps = append(ps, fmt.Sprintf("%s run %d", p.Name, p.Run))
				continue
			}
			ps = append(ps, fmt.Sprintf("%s v%d", p.Name, p.Version))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", w.ID, w.Host, w.PID,
			w.Seen.Sub(w.Started).Round(time.Second), orDash(ps))
	}
	return tw.Flush()
}

// deployedBy says who deployed d, " by USER" or " by USER (account
// A)", or nothing when that is not known.
func deployedBy(d *cluster.Deployment) string {
	switch {
	case d.DeployedBy == "":
		return ""
	case d.Account == "":
		return " by " + d.DeployedBy
	}
	return fmt.Sprintf(" by %s (account %s)", d.DeployedBy, d.Account)
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}
