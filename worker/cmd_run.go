package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/config"
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
	fs.Usage = func() { runUsage(b, fs, fs.Output()) }
	pos, code, ok := parseCommand(fs, args, stdout)
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
	cfg, err := runConfig(b, *configPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		if errors.Is(err, ErrConfigLoad) {
			return ExitUsage
		}
		return ExitInvalidConfig
	}
	config.FillLocalIdentity(cfg) // no Queue: placeholders are fine here, never in work
	logger, closeLog, err := newLogger(stderr, slog.LevelWarn, logConfigOf(cfg, *verbose))
	if err != nil { // logFile cannot be opened: the config's fault, as in work
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		return ExitInvalidConfig
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
	return RunExitCode(res.Outcome.Resolution)
}

// RunExitCode is the exit code of `run TASK_FILE` for the task's
// resolution (see RunExitCodes): a malformed payload is the author's input
// as a task file that cannot be read is, an internal-error the worker's
// failure, worker-shutdown the signal that stopped it.
func RunExitCode(r task.Resolution) int {
	switch {
	case r.State == task.Completed:
		return ExitCompleted
	case r.State == task.Failed:
		return ExitFailed
	case r.Reason == task.ReasonMalformedPayload:
		return ExitUsage
	case r.Reason == task.ReasonInternalError:
		return ExitInternal
	case r.Reason == task.ReasonWorkerShutdown:
		return ExitSignal
	}
	return ExitException
}

// RunExitCodes is the exit code table of `run TASK_FILE`, in `run -h` and
// the README ("Exit codes", column `run TASK_FILE`; TestRunExitCodesDocumented
// checks both). The codes are the claiming worker's where the event is
// the same (generic-worker's usage.mdx, "Exit Codes").
var RunExitCodes = []struct {
	Code    int
	Meaning string
}{
	{ExitCompleted, "the task completed"},
	{ExitFailed, "the task failed (the run's reasons say why: its exit code, a missing required artifact)"},
	{ExitException, "the task resolved as another exception (resource-unavailable, intermittent-task)"},
	{ExitUsage, "bad input: the command line; the task file cannot be read, is not JSON or YAML, or not a task definition; the payload is malformed (exception/malformed-payload, task.log and manifest.json written); the config file cannot be read or is not JSON or YAML"},
	{ExitInternal, "the worker itself failed: exception/internal-error, or the output directory cannot be written, or the host cannot run tasks (the engine's container daemon does not answer)"},
	{ExitSignal, "SIGTERM or SIGINT: the task was stopped and resolved exception/worker-shutdown"},
	{ExitInvalidConfig, "invalid config (a key unknown, of the wrong type or missing; the engine or a plugin refused its section)"},
}

// runConfig loads the config of `run TASK_FILE`: the profile's defaults,
// the workergen config file at path ("" for none) and the TASKCLUSTER_*
// variables (LoadConfig). A file that cannot be read or is not JSON or
// YAML is wrapped in ErrConfigLoad (exit 64, as for a claiming worker),
// an invalid config in ErrConfig (exit 73).
func runConfig(b Build, path string) (*Config, error) {
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfigLoad, err)
		}
		if _, err := config.YAMLToJSON(data); err != nil {
			return nil, fmt.Errorf("%w: %s: not valid JSON or YAML: %w", ErrConfigLoad, path, err)
		}
	}
	return LoadConfig(b, path, os.Getenv)
}

// runUsage prints run's two forms and its flags.
func runUsage(b Build, fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, `Usage:
  %[1]s run [flags] TASK_FILE
      Runs one task definition (or bare payload), JSON or YAML, with this worker's engine and
      plugins, without a Queue. Exit status:
%[2]s  %[1]s run --config FILE [--with-worker-runner] [--worker-runner-protocol-pipe PIPE]
      generic-worker's command line: claims and runs tasks from the Queue as 'work' does. FILE is
      generic-worker's config (as worker-runner writes it) or workergen's. Exit status as
      generic-worker: 0 numberOfTasksToRun reached, 64 config unreadable, 68 idle, 69 internal
      error, 70 worker-manager asked to terminate, 71 signal, 72 graceful termination,
      73 invalid config, 78 protocol pipe cannot be opened.

Flags:
`, b.Binary, runExitTable("        "))
	fs.PrintDefaults()
}

// runExitTable renders RunExitCodes, one indented line per code, wrapped
// at 100 columns.
func runExitTable(indent string) string {
	var sb strings.Builder
	for _, c := range RunExitCodes {
		line := fmt.Sprintf("%s%-3d ", indent, c.Code)
		for _, w := range strings.Fields(c.Meaning) {
			if len(line)+1+len(w) > 100 && strings.TrimSpace(line) != "" {
				sb.WriteString(strings.TrimRight(line, " ") + "\n")
				line = indent + "    "
			}
			line += w + " "
		}
		sb.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	return sb.String()
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
