package worker

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/config"
)

func cmdWork(b Build, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(b.Binary+" work", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o serveOptions
	fs.StringVar(&o.configPath, "config", "", "worker config `FILE` (workergen's format, JSON or YAML, merged over the profile's defaults; or generic-worker's)")
	fs.BoolVar(&o.verbose, "v", false, "debug-level worker log")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s work --config FILE\n\nClaims tasks for workerPoolId from the Queue at rootUrl and runs them until SIGTERM/SIGINT,\nnumberOfTasksToRun or idleTimeout. workerPoolId, workerGroup and workerId are required (config,\nor TASKCLUSTER_WORKER_POOL_ID, TASKCLUSTER_WORKER_GROUP, TASKCLUSTER_WORKER_ID). Credentials come\nfrom the config or TASKCLUSTER_CLIENT_ID, TASKCLUSTER_ACCESS_TOKEN, TASKCLUSTER_CERTIFICATE;\nTASKCLUSTER_ROOT_URL overrides rootUrl. Tasks run in tasksDir (default <stateDir>/tasks).\nThe same as `run --config FILE`.\n\nFlags:\n", b.Binary)
		fs.PrintDefaults()
	}
	pos, code, ok := parseCommand(fs, args, stdout)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "%s work: unexpected argument %q (the config is given with --config FILE)\n", b.Binary, pos[0])
		return ExitUsage
	}
	if o.configPath == "" {
		fmt.Fprintf(stderr, "%s work: --config FILE is required (a worker config with rootUrl, credentials, workerPoolId, workerGroup and workerId; see README)\n", b.Binary)
		return ExitUsage
	}
	return serve(b, o, os.Stdin, stdout, stderr)
}

// serveOptions are the flags of a claiming worker (`work`, `run --config`).
type serveOptions struct {
	configPath string
	withRunner bool   // --with-worker-runner
	pipe       string // --worker-runner-protocol-pipe
	verbose    bool
}

// serve runs a claiming worker until it stops and returns its exit code
// (see the Exit* constants). Under worker-runner the protocol is set up
// first, so that every later failure is sent as an error-report, and
// `shutdown` is sent on every exit path.
func serve(b Build, o serveOptions, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	var sess *runnerSession
	if o.withRunner || o.pipe != "" {
		var err error
		if sess, code, err = openRunnerSession(b, o.pipe, stdin, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
			return code
		}
		defer sess.close()
	}
	logger, _, _ := sess.logger(stderr, logConfig{Verbose: o.verbose}) // text on stderr until the config is read
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		if sess != nil {
			logger.Error("worker exiting", "error", err, "exitCode", code)
		}
		sess.reportError(code, err)
		return code
	}
	defer func() {
		// A panic of the claim loop is an internal error: reported, and
		// `shutdown` still sent (by the earlier deferred close).
		if r := recover(); r != nil {
			code = fail(ExitInternal, fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	wc, err := loadWorkerConfig(b, o.configPath, os.Getenv)
	if err == nil {
		err = checkWorkConfig(wc.Config)
	}
	switch {
	case errors.Is(err, ErrConfigLoad):
		return fail(ExitUsage, err)
	case err != nil:
		return fail(ExitInvalidConfig, err)
	}
	cfg := wc.Config
	// The first line: who this worker is and where its state goes (logged
	// once the configured logger exists, before the metrics endpoint's).
	starting := func(log *slog.Logger) {
		log.Info("worker starting", "profile", b.Profile, "version", version, "rootUrl", cfg.RootURL,
			"workerPoolId", cfg.WorkerPoolID, "workerGroup", cfg.WorkerGroup, "workerId", cfg.WorkerID,
			"tasksDir", cfg.TasksDir, "stateDir", cfg.StateDir, "configFormat", string(wc.Format))
	}
	l, rec, stopTelemetry, err := setupTelemetry(b, cfg, sess, stderr, o.verbose, starting)
	if err != nil {
		return fail(ExitInvalidConfig, err)
	}
	defer stopTelemetry()
	logger = l
	if wc.GW != nil {
		wc.GW.LogWarnings(logger)
		logger.Debug("worker location", "location", wc.GW.Location)
	}
	if err := os.MkdirAll(cfg.TasksDir, 0o755); err != nil {
		return fail(ExitInternal, fmt.Errorf("tasksDir: %w", err))
	}
	runner, err := NewRunner(b, cfg, logger)
	if errors.Is(err, ErrConfig) {
		return fail(ExitInvalidConfig, err)
	} else if err != nil {
		return fail(ExitInternal, err)
	}
	defer runner.Close()
	creds := taskcluster.NewCredentialsHolder(cfg.Credentials)
	client := &taskcluster.Client{RootURL: cfg.RootURL, Credentials: creds.Get, Logger: logger, UserAgent: b.Binary + "/" + version}
	w := &Worker{Runner: runner, Config: cfg, Client: client, Logger: logger, Metrics: rec}
	w.WorkerManager = sess != nil
	sess.onNewCredentials(creds, logger)
	sess.onGracefulTermination(w, logger)

	defer shutdownOnSignals(w)()
	err = w.Work(context.Background())
	switch {
	case errors.Is(err, ErrConfig), errors.Is(err, ErrStartupCheck):
		return fail(ExitInvalidConfig, err)
	case err != nil:
		return fail(ExitInternal, err)
	}
	r := w.StopReason()
	logger.Info("worker exiting", "reason", r.String(), "exitCode", r.ExitCode())
	return r.ExitCode()
}

// checkWorkConfig checks what `work` needs beyond the schema.
func checkWorkConfig(cfg *Config) error {
	var missing []string
	if cfg.RootURL == "" {
		missing = append(missing, "config.rootUrl: required for work (or set TASKCLUSTER_ROOT_URL)")
	}
	if cfg.Credentials.ClientID == "" || cfg.Credentials.AccessToken == "" {
		missing = append(missing, "config.credentials: clientId and accessToken are required for work (or set TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN)")
	}
	if c := cfg.Credentials.Certificate; c != "" && !json.Valid([]byte(c)) {
		missing = append(missing, "config.credentials.certificate (or TASKCLUSTER_CERTIFICATE): not valid JSON; give the temporary credentials' certificate exactly as issued, or leave it empty for permanent credentials")
	}
	missing = append(missing, missingIdentity(cfg)...)
	if cfg.WorkerPoolID != "" && !strings.Contains(cfg.WorkerPoolID, "/") {
		missing = append(missing, fmt.Sprintf("config.workerPoolId: %q must be <provisionerId>/<workerType>", cfg.WorkerPoolID))
	}
	switch cfg.ArtifactUpload {
	case taskcluster.StorageS3, taskcluster.StorageObject:
	default:
		missing = append(missing, fmt.Sprintf("config.artifactUpload: %q must be s3 or object", cfg.ArtifactUpload))
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrConfig, strings.Join(missing, "\n  "))
	}
	return nil
}

// missingIdentity names each identity key (config.IdentityKeys) cfg lacks
// and where to set it. `work` has no default for them: two workers
// started with a placeholder would claim as one worker.
func missingIdentity(cfg *Config) []string {
	have := map[string]string{"workerPoolId": cfg.WorkerPoolID, "workerGroup": cfg.WorkerGroup, "workerId": cfg.WorkerID}
	var out []string
	for _, k := range config.IdentityKeys {
		if have[k.Key] != "" {
			continue
		}
		out = append(out, fmt.Sprintf("config.%s: required for work, and no default: set %s in the config file or %s in the environment (under worker-runner, its worker config provides it)", k.Key, k.Key, k.Env))
	}
	return out
}
