package worker

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/workergen/workergen/worker/schema"
)

// Exit codes of a generated worker binary. Where generic-worker has the
// same event, the code is generic-worker's
// (references/generic-worker/usage.mdx, "Exit Codes"); the README has the
// full table.
//
// `run TASK_FILE` uses the same codes for the same events and reports the
// task with the others (RunExitCodes, RunExitCode).
const (
	ExitCompleted = 0 // run TASK_FILE: the task completed; run --config/work: numberOfTasksToRun reached
	ExitFailed    = 1 // run TASK_FILE: the task failed
	ExitException = 2 // run TASK_FILE: the task resolved as an exception without a code of its own below
	// ExitUsage: a bad command line, task file (run TASK_FILE: also a
	// malformed payload), or a config file that cannot be read or is not
	// JSON/YAML (generic-worker: "not able to load generic-worker config").
	ExitUsage = 64
	// ExitIdle: idleTimeout reached (confirmed by worker-manager under
	// worker-runner).
	ExitIdle = 68
	// ExitInternal: the worker itself failed, or the host cannot run tasks
	// (tasksDir not writable, an engine that cannot start; run TASK_FILE:
	// exception/internal-error, output directory not writable).
	ExitInternal = 69
	// ExitWorkerManager: worker-manager said the worker is no longer
	// needed.
	ExitWorkerManager = 70
	// ExitSignal: stopped by SIGTERM or SIGINT (run TASK_FILE: the task
	// resolved exception/worker-shutdown).
	ExitSignal = 71
	// ExitGracefulTermination: worker-runner's graceful-termination
	// (generic-worker's exit on a spot termination notice).
	ExitGracefulTermination = 72
	// ExitInvalidConfig: the worker config is invalid (a key unknown, of
	// the wrong type, missing: workerPoolId, workerGroup and workerId
	// included), the Queue at rootUrl did not answer the start-up check
	// (ErrStartupCheck), or the Queue refused the worker's credentials.
	ExitInvalidConfig = 73
	// ExitProtocolPipe: --worker-runner-protocol-pipe cannot be opened.
	ExitProtocolPipe = 78
)

// Main is the entry point of every generated worker binary; it returns the
// process exit code. Subcommands:
//
//	--version                       version, commit, profile, engine, plugins
//	schema payload|config [--markdown]  print an embedded JSON Schema or its reference page
//	run [flags] TASK_FILE           run one task locally, no Queue
//	run --config FILE [--with-worker-runner] [--worker-runner-protocol-pipe PIPE]
//	                                generic-worker's `run`: claim and run tasks
//	work --config FILE              claim and run tasks from a Queue
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
	case "components":
		return cmdComponents(b, args[1:], stdout, stderr)
	case "run":
		return cmdRun(b, args[1:], stdout, stderr)
	case "work":
		return cmdWork(b, args[1:], stdout, stderr)
	case "new-ed25519-keypair": // cmd_keypair.go
		return cmdNewEd25519Keypair(b, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n", b.Binary, args[0])
	usage(b, stderr)
	return ExitUsage
}

func usage(b Build, w io.Writer) {
	fmt.Fprintf(w, `%[1]s: Taskcluster worker (profile %[2]s, engine %[3]s)

Usage:
  %[1]s --version                  show version, commit, profile, engine and plugins
  %[1]s schema payload|config [--markdown]
                                   print the embedded payload or config JSON Schema, or
                                   its reference page for task authors / operators
  %[1]s components [--json]        list the engine and plugins: import path, module, version, origin
  %[1]s run [flags] TASK_FILE      run one task definition (or bare payload; JSON or YAML) locally
  %[1]s run --config FILE [--with-worker-runner] [--worker-runner-protocol-pipe PIPE]
                                   generic-worker's command line: claim and run tasks from a
                                   Taskcluster Queue (FILE in generic-worker's or workergen's format);
                                   --with-worker-runner when started by worker-runner
  %[1]s work --config FILE         claim and run tasks from a Taskcluster Queue

run with a TASK_FILE runs that one task; run without one (and with --config) is a worker.
Run '%[1]s run -h' or '%[1]s work -h' for their flags.

Exit codes (claiming): 0 numberOfTasksToRun reached, 64 config cannot be read, 68 idle,
69 internal error, 70 worker-manager asked to terminate, 71 SIGTERM/SIGINT,
72 graceful termination, 73 invalid config (identity missing, rootUrl unreachable at start,
credentials refused), 78 protocol pipe cannot be opened.
Exit codes (run TASK_FILE): 0 completed, 1 failed, 2 another exception, 64 bad input
(including a malformed payload), 69 internal error, 71 SIGTERM/SIGINT, 73 invalid config.
`, b.Binary, b.Profile, b.Engine.Name)
}

func cmdSchema(b Build, args []string, stdout, stderr io.Writer) int {
	markdown := len(args) == 2 && args[1] == "--markdown"
	if len(args) == 2 && args[0] == "--markdown" {
		markdown, args = true, args[1:]
	}
	if len(args) != 1 && !(markdown && len(args) == 2) {
		fmt.Fprintf(stderr, "usage: %s schema payload|config [--markdown]\n", b.Binary)
		return ExitUsage
	}
	var doc []byte
	var page schema.Page
	switch args[0] {
	case "payload":
		doc, page = b.PayloadSchema, schema.PayloadPage(docProfile(b))
	case "config":
		doc, page = b.ConfigSchema, schema.ConfigPage(docProfile(b))
	default:
		fmt.Fprintf(stderr, "%s schema: unknown schema %q; choose payload or config\n", b.Binary, args[0])
		return ExitUsage
	}
	if markdown {
		md, err := schema.Markdown(doc, page)
		if err != nil {
			fmt.Fprintf(stderr, "%s schema: %v\n", b.Binary, err)
			return ExitInternal
		}
		doc = md
	}
	_, _ = stdout.Write(doc)
	return 0
}

// docProfile is what the reference pages say about the binary's profile.
func docProfile(b Build) schema.Profile {
	sp := schema.Profile{Name: b.Profile, Binary: b.Binary, Dialect: string(b.Dialect), Engine: b.Engine.Name, DefaultConfig: b.DefaultConfig}
	for _, p := range b.Plugins {
		sp.Plugins = append(sp.Plugins, p.Name)
	}
	for _, u := range b.Unsupported {
		sp.Unsupported = append(sp.Unsupported, schema.UnsupportedField{Path: u.Path, Feature: u.Feature})
	}
	return sp
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

// newLogger is the worker's log on w at lc's level (def when it names
// none), in lc.Format, and appended to lc.File too when set; closeLog
// closes that file. The error (wrapping ErrConfig) names logFile.
func newLogger(w io.Writer, def slog.Level, lc logConfig) (l *slog.Logger, closeLog func(), err error) {
	level := lc.level(def)
	h, closeLog, err := teeLogFile(newLogHandler(w, lc.Format, level), level, lc)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(h), closeLog, nil
}

// parseCommand parses a subcommand's flags (interspersed with its
// arguments). ok is false when the command ends here, with exit code code
// (0 for -h, ExitUsage for bad flags, already reported by fs). Help asked
// for (-h, -help, --help) goes to stdout, as the top-level --help does;
// the usage after a bad flag stays on fs's output (stderr). A command's
// Usage writes to fs.Output().
func parseCommand(fs *flag.FlagSet, args []string, stdout io.Writer) (pos []string, code int, ok bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			break
		}
	}
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
// error on stderr and returns a nil Runner with the exit code
// (ExitInvalidConfig when the engine or a plugin refused its config
// section, as for a claiming worker; ExitInternal otherwise).
func startRunner(b Build, cfg *Config, logger *slog.Logger, stderr io.Writer) (*Runner, int) {
	runner, err := NewRunner(b, cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		if errors.Is(err, ErrConfig) {
			return nil, ExitInvalidConfig
		}
		return nil, ExitInternal
	}
	return runner, 0
}
