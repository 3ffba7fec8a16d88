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
	"strings"

	"github.com/workergen/workergen/taskcluster"
)

func cmdWork(b Build, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(b.Binary+" work", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "worker config `FILE` (JSON or YAML), merged over the profile's defaults")
	verbose := fs.Bool("v", false, "debug-level worker log")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s work --config FILE\n\nClaims tasks for workerPoolId from the Queue at rootUrl and runs them until SIGTERM/SIGINT,\nnumberOfTasksToRun or idleTimeout. Credentials come from the config or TASKCLUSTER_CLIENT_ID,\nTASKCLUSTER_ACCESS_TOKEN, TASKCLUSTER_CERTIFICATE; TASKCLUSTER_ROOT_URL overrides rootUrl.\n\nFlags:\n", b.Binary)
		fs.PrintDefaults()
	}
	pos, code, ok := parseCommand(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "%s work: unexpected argument %q (the config is given with --config FILE)\n", b.Binary, pos[0])
		return ExitUsage
	}
	if *configPath == "" {
		fmt.Fprintf(stderr, "%s work: --config FILE is required (a worker config with rootUrl, credentials, workerPoolId, workerGroup and workerId; see README)\n", b.Binary)
		return ExitUsage
	}
	logger := newLogger(stderr, slog.LevelInfo, *verbose)
	cfg, err := LoadConfig(b, *configPath, os.Getenv)
	if err == nil {
		err = checkWorkConfig(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		return ExitUsage
	}
	if err := os.MkdirAll(cfg.TasksDir, 0o755); err != nil {
		fmt.Fprintf(stderr, "%s: tasksDir: %v\n", b.Binary, err)
		return ExitUsage
	}
	runner, code := startRunner(b, cfg, logger, stderr)
	if runner == nil {
		return code
	}
	defer runner.Close()
	client := &taskcluster.Client{
		RootURL:     cfg.RootURL,
		Credentials: taskcluster.StaticCredentials(cfg.Credentials),
		Logger:      logger,
		UserAgent:   b.Binary + "/" + version,
	}
	w := &Worker{Runner: runner, Config: cfg, Client: client, Logger: logger}
	defer shutdownOnSignals(w)()
	if err := w.Work(context.Background()); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		if errors.Is(err, ErrConfig) {
			return ExitUsage
		}
		return ExitInternal
	}
	return 0
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
	if !strings.Contains(cfg.WorkerPoolID, "/") {
		missing = append(missing, fmt.Sprintf("config.workerPoolId: %q must be <provisionerId>/<workerType>", cfg.WorkerPoolID))
	}
	if cfg.WorkerGroup == "" || cfg.WorkerID == "" {
		missing = append(missing, "config.workerGroup and config.workerId: required for work")
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
