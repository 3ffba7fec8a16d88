package worker

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/taskrun"
)

func cmdRun(b Build, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(b.Binary+" run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "worker config `FILE` (JSON or YAML) merged over the profile's defaults")
	outDir := fs.String("output", "", "output `DIR` for the task log, artifacts and manifest.json (default workergen-output/<taskId>)")
	taskID := fs.String("task-id", "", "taskId to use (default: a new slugid)")
	keep := fs.Bool("keep-task-dir", false, "keep the task directory (<output>/task) after the run")
	verbose := fs.Bool("v", false, "verbose worker log on stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s run [flags] TASK_FILE\n\nRuns one task definition (or bare payload), JSON or YAML, with this worker's engine and plugins, without a Queue.\nExit status: 0 completed, 1 failed, 2 exception, 64 bad input.\n\nFlags:\n", b.Binary)
		fs.PrintDefaults()
	}
	pos, code, ok := parseCommand(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return ExitUsage
	}
	logger := newLogger(stderr, slog.LevelWarn, *verbose)

	cfg, err := LoadConfig(b, *configPath, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		return ExitUsage
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "%s: reading task file: %v\n", b.Binary, err)
		return ExitUsage
	}
	def, err := ParseTaskFile(data, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "%s: task file %s: %v\n", b.Binary, pos[0], err)
		return ExitUsage
	}
	if *taskID == "" {
		*taskID = NewSlugID()
	} else if !slugPattern.MatchString(*taskID) {
		fmt.Fprintf(stderr, "%s: --task-id %q is not a Taskcluster slugid (22 characters of URL-safe base64, as made by slugid.nice())\n", b.Binary, *taskID)
		return ExitUsage
	}
	if def.TaskGroupID == "" {
		def.TaskGroupID = *taskID
	}
	if *outDir == "" {
		*outDir = filepath.Join("workergen-output", *taskID)
	}

	runner, code := startRunner(b, cfg, logger, stderr)
	if runner == nil {
		return code
	}
	defer runner.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := RunLocal(ctx, runner, LocalRun{TaskID: *taskID, Definition: def, OutputDir: *outDir, KeepTaskDir: *keep})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		return ExitInternal
	}
	fmt.Fprintf(stdout, "task %s run 0: %s\n", *taskID, res.Manifest.Resolution)
	for _, r := range res.Manifest.Reasons {
		fmt.Fprintf(stdout, "  %s\n", r)
	}
	fmt.Fprintf(stdout, "log: %s\nmanifest: %s\n", filepath.Join(*outDir, res.Manifest.Log), filepath.Join(*outDir, "manifest.json"))
	switch res.Outcome.Resolution.State {
	case task.Completed:
		return ExitCompleted
	case task.Failed:
		return ExitFailed
	}
	return ExitException
}

// slugPattern is the taskId pattern of queue/v1 task.json (slugid v4).
var slugPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$`)

// LocalRun describes one run of RunLocal.
type LocalRun struct {
	TaskID      string
	RunID       int
	Definition  task.Definition
	OutputDir   string // created if missing
	KeepTaskDir bool   // keep <OutputDir>/task after the run
}

// LocalResult is what RunLocal produced.
type LocalResult struct {
	Outcome  taskrun.Outcome
	Manifest Manifest
}

// RunLocal runs one task without a Queue: the task directory is
// <OutputDir>/task, the log <OutputDir>/task.log, artifacts go to
// <OutputDir>/artifacts/ and <OutputDir>/manifest.json records the
// resolution and every artifact. When ctx is cancelled (SIGINT/SIGTERM) the
// task is stopped and resolves exception/worker-shutdown. The error is for
// problems of the worker host (output directory not writable), not of the
// task.
func RunLocal(ctx context.Context, r *Runner, lr LocalRun) (LocalResult, error) {
	out, err := filepath.Abs(lr.OutputDir)
	if err != nil {
		return LocalResult{}, err
	}
	taskDir := filepath.Join(out, "task")
	if err := os.RemoveAll(taskDir); err != nil {
		return LocalResult{}, fmt.Errorf("cleaning task directory: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(out, "artifacts")); err != nil {
		return LocalResult{}, fmt.Errorf("cleaning artifacts directory: %w", err)
	}
	if err := os.MkdirAll(taskDir, 0o755); err != nil {
		return LocalResult{}, fmt.Errorf("creating task directory: %w", err)
	}
	logPath := filepath.Join(out, "task.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return LocalResult{}, fmt.Errorf("creating task log: %w", err)
	}
	defer lf.Close()
	sink := &DirSink{Dir: out}
	tc := &task.Context{
		TaskID:      lr.TaskID,
		RunID:       lr.RunID,
		Definition:  lr.Definition,
		Worker:      r.Info,
		TaskDir:     taskDir,
		Log:         task.NewLog(lf),
		LogPath:     logPath,
		Artifacts:   sink,
		Credentials: func() *task.Credentials { return nil },
		Logger:      runnerLogger(r).With("taskId", lr.TaskID, "runId", lr.RunID),
		Started:     time.Now(),
	}
	if r.Info.RootURL != "" {
		// Run mode has no task credentials: the deployment's public
		// artifacts and index are reachable unsigned.
		tc.Queue = taskcluster.RunQueue{Client: &taskcluster.Client{RootURL: r.Info.RootURL, Logger: tc.Logger}}
		tc.ScopeExpander = (&taskcluster.Client{RootURL: r.Info.RootURL, Logger: tc.Logger}).Auth()
	}
	ctl := taskrun.NewControl()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			ctl.Shutdown()
		case <-done:
		}
	}()
	o := r.Run(context.WithoutCancel(ctx), tc, ctl)
	close(done)
	if err := lf.Sync(); err != nil {
		return LocalResult{}, fmt.Errorf("writing task log: %w", err)
	}
	if !lr.KeepTaskDir {
		_ = os.RemoveAll(taskDir)
	}
	m := Manifest{
		TaskID: lr.TaskID, RunID: lr.RunID, Profile: r.Info.Profile,
		Resolution: o.Resolution.String(), ExitCode: o.ExitCode, Duration: o.Duration.Seconds(),
		Reasons: o.Reasons, Log: "task.log", Artifacts: sink.Artifacts(),
	}
	if err := writeJSONFile(filepath.Join(out, "manifest.json"), m); err != nil {
		return LocalResult{}, fmt.Errorf("writing manifest: %w", err)
	}
	return LocalResult{Outcome: o, Manifest: m}, nil
}
