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
	configPath := fs.String("config", "", "worker config `FILE`: with TASK_FILE merged over the profile's defaults for this run; without, the config of a claiming worker (generic-worker's format or workergen's)")
	outDir := fs.String("output", "", "TASK_FILE: output `DIR` for the task log, artifacts and manifest.json (default workergen-output/<taskId>)")
	taskID := fs.String("task-id", "", "TASK_FILE: taskId to use (default: a new slugid)")
	keep := fs.Bool("keep-task-dir", false, "TASK_FILE: keep the task directory (<output>/task) after the run")
	withRunner := fs.Bool("with-worker-runner", false, "without TASK_FILE: started by worker-runner; speak its protocol on stdin/stdout")
	pipe := fs.String("worker-runner-protocol-pipe", "", "without TASK_FILE: speak worker-runner's protocol over this Windows named `PIPE` (worker.protocolPipe; implies --with-worker-runner)")
	verbose := fs.Bool("v", false, "verbose worker log on stderr")
	fs.Usage = func() { runUsage(b, fs, stderr) }
	pos, code, ok := parseCommand(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 && *configPath != "" {
		if name := setFlag(fs, "output", "task-id", "keep-task-dir"); name != "" {
			fmt.Fprintf(stderr, "%s run: --%s goes with a TASK_FILE; without one, run --config FILE is a claiming worker\n", b.Binary, name)
			return ExitUsage
		}
		return serve(b, serveOptions{configPath: *configPath, withRunner: *withRunner, pipe: *pipe, verbose: *verbose}, os.Stdin, stdout, stderr)
	}
	if len(pos) != 1 {
		fs.Usage()
		return ExitUsage
	}
	if name := setFlag(fs, "with-worker-runner", "worker-runner-protocol-pipe"); name != "" {
		fmt.Fprintf(stderr, "%s run: --%s goes with run --config FILE and no TASK_FILE (a claiming worker started by worker-runner)\n", b.Binary, name)
		return ExitUsage
	}
	cfg, err := LoadConfig(b, *configPath, os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		return ExitUsage
	}
	logger, closeLog, err := newLogger(stderr, slog.LevelWarn, logConfigOf(cfg, *verbose))
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		return ExitUsage
	}
	defer closeLog()
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

// runUsage prints run's two forms and its flags.
func runUsage(b Build, fs *flag.FlagSet, stderr io.Writer) {
	fmt.Fprintf(stderr, `Usage:
  %[1]s run [flags] TASK_FILE
      Runs one task definition (or bare payload), JSON or YAML, with this worker's engine and
      plugins, without a Queue. Exit status: 0 completed, 1 failed, 2 exception, 64 bad input.
  %[1]s run --config FILE [--with-worker-runner] [--worker-runner-protocol-pipe PIPE]
      generic-worker's command line: claims and runs tasks from the Queue as 'work' does. FILE is
      generic-worker's config (as worker-runner writes it) or workergen's. Exit status as
      generic-worker: 0 numberOfTasksToRun reached, 64 config unreadable, 68 idle, 69 internal
      error, 70 worker-manager asked to terminate, 71 signal, 72 graceful termination,
      73 invalid config, 78 protocol pipe cannot be opened.

Flags:
`, b.Binary)
	fs.PrintDefaults()
}

// setFlag returns the first of names set on the command line, or "".
func setFlag(fs *flag.FlagSet, names ...string) string {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range names {
		if set[n] {
			return n
		}
	}
	return ""
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
