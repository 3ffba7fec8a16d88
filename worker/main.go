package worker

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
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
	case "components":
		return cmdComponents(b, args[1:], stdout, stderr)
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
  %[1]s components [--json]        list the engine and plugins: import path, module, version, origin
  %[1]s run [flags] TASK_FILE      run one task definition (or bare payload; JSON or YAML) locally
  %[1]s work --config FILE         claim and run tasks from a Taskcluster Queue

Run '%[1]s run -h' or '%[1]s work -h' for their flags.
`, b.Binary, b.Profile, b.Engine.Name)
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
