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
)

// Exit codes of a generated worker binary.
const (
	ExitCompleted = 0  // run: the task completed; work: clean stop
	ExitFailed    = 1  // run: the task failed
	ExitException = 2  // run: the task resolved as an exception
	ExitUsage     = 64 // bad command line, config or task file
	ExitInternal  = 70 // the worker itself failed
)

// Main is the entry point of every generated worker binary; it returns the
// process exit code. Subcommands:
//
//	--version                     version, commit, profile, engine, plugins
//	schema payload|config         print an embedded JSON Schema
//	run [flags] TASK_FILE         run one task locally, no Queue
//	work --config FILE            claim and run tasks from a Queue
func Main(b Build) int {
	return MainArgs(b, os.Args[1:], os.Stdout, os.Stderr)
}

// MainArgs is Main with explicit arguments and output streams.
func MainArgs(b Build, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(b, stderr)
		return ExitUsage
	}
	switch args[0] {
	case "--version", "-version", "version":
		printVersion(b, stdout)
		return 0
	case "-h", "--help", "help":
		usage(b, stdout)
		return 0
	case "schema":
		return cmdSchema(b, args[1:], stdout, stderr)
	case "run":
		return cmdRun(b, args[1:], stdout, stderr)
	case "work":
		return cmdWork(b, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n", b.Binary, args[0])
	usage(b, stderr)
	return ExitUsage
}

func usage(b Build, w io.Writer) {
	fmt.Fprintf(w, `%[1]s: Taskcluster worker (profile %[2]s, engine %[3]s)

Usage:
  %[1]s --version                  show version, commit, profile, engine and plugins
  %[1]s schema payload|config      print the embedded payload or config JSON Schema
  %[1]s run [flags] TASK_FILE      run one task definition (or bare payload; JSON or YAML) locally
  %[1]s work --config FILE         claim and run tasks from a Taskcluster Queue

Run '%[1]s run -h' or '%[1]s work -h' for their flags.
`, b.Binary, b.Profile, b.Engine.Name)
}

func printVersion(b Build, w io.Writer) {
	names := make([]string, len(b.Plugins))
	for i, p := range b.Plugins {
		names[i] = p.Name
	}
	plugins := strings.Join(names, ", ")
	if plugins == "" {
		plugins = "(none)"
	}
	fmt.Fprintf(w, "%s %s\ncommit: %s\nprofile: %s\nengine: %s\nplugins: %s\n", b.Binary, version, commit, b.Profile, b.Engine.Name, plugins)
}

func cmdSchema(b Build, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "usage: %s schema payload|config\n", b.Binary)
		return ExitUsage
	}
	switch args[0] {
	case "payload":
		_, _ = stdout.Write(b.PayloadSchema)
	case "config":
		_, _ = stdout.Write(b.ConfigSchema)
	default:
		fmt.Fprintf(stderr, "%s schema: unknown schema %q; choose payload or config\n", b.Binary, args[0])
		return ExitUsage
	}
	return 0
}

// parseInterspersed parses flags that may come before or after positional
// arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

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

// newLogger is the worker's log on w at level, or debug with verbose.
func newLogger(w io.Writer, level slog.Level, verbose bool) *slog.Logger {
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// parseCommand parses a subcommand's flags (interspersed with its
// arguments). ok is false when the command ends here, with exit code code
// (0 for -h, ExitUsage for bad flags, already reported by fs).
func parseCommand(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	pos, err := parseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, 0, false
	case err != nil:
		return nil, ExitUsage, false
	}
	return pos, 0, true
}

// startRunner constructs the engine and plugins; on failure it reports the
// error on stderr and returns a nil Runner with the exit code (ExitUsage for
// config problems, ExitInternal otherwise).
func startRunner(b Build, cfg *Config, logger *slog.Logger, stderr io.Writer) (*Runner, int) {
	runner, err := NewRunner(b, cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		if errors.Is(err, ErrConfig) {
			return nil, ExitUsage
		}
		return nil, ExitInternal
	}
	return runner, 0
}

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
	Outcome  Outcome
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
		Logger:      r.logger().With("taskId", lr.TaskID, "runId", lr.RunID),
		Started:     time.Now(),
	}
	if r.Info.RootURL != "" {
		// Run mode has no task credentials: the deployment's public
		// artifacts and index are reachable unsigned.
		tc.Queue = taskcluster.RunQueue{Client: &taskcluster.Client{RootURL: r.Info.RootURL, Logger: tc.Logger}}
	}
	ctl := NewControl()
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
