package taskrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/worker/schema"
)

// Runner executes task runs with one engine and the profile's plugins. It
// owns the stage sequence and the mapping from what happened to a
// Taskcluster resolution; the worker's `run` and `work` commands and
// plugintest all run tasks through it. A Runner is safe for concurrent use
// (runs of a worker with capacity above one overlap) as long as Hooks are.
type Runner struct {
	Engine  engines.Engine
	Plugins []NamedPlugin // in declared stage order
	// Payload is the composed payload schema; nil skips the schema check
	// (the profile's Unsupported fields are still refused).
	Payload     *schema.Schema
	Unsupported []Unsupported
	// Dialect is the profile's payload dialect; it names the other
	// dialects' payloads in malformed-payload reasons (DialectHint).
	Dialect task.Dialect
	Info    task.WorkerInfo
	Logger  *slog.Logger // nil means slog.Default()
	// Hooks, when set, are told what happens during each run.
	Hooks *Hooks
}

// NamedPlugin is a constructed plugin with its profile name (which names it
// in the task log and in errors, e.g. "plugin artifacts: Stopped: ...").
type NamedPlugin struct {
	Name   string
	Plugin plugins.Plugin
}

// Unsupported is a payload field the profile's dialect defines but this
// profile does not implement.
type Unsupported struct {
	// Path is the field's path in the payload, dot-separated, e.g. "mounts"
	// or "features.chainOfTrust".
	Path string
	// Feature names what would provide it, e.g. "plugin mounts".
	Feature string
}

// Outcome is how a run ended.
type Outcome struct {
	Resolution task.Resolution
	// ExitCode is the task command's exit code, or -1 when no command ran
	// to an exit (not started, killed by signal).
	ExitCode int
	// Duration is the task command's run time (0 when it did not start).
	Duration time.Duration
	// Reasons explains exceptions and failures, one line each (also written
	// to the task log).
	Reasons []string
	// Exception is what made the run an exception (its Reason is
	// Resolution.Reason), nil when the run completed or failed.
	Exception *task.ExceptionError
}

// Reported reports whether the outcome must be reported to the Queue: a run
// cancelled by the Queue (reclaim answered 409) is not.
func (o Outcome) Reported() bool { return o.Resolution.Reason != task.ReasonCanceled }

// Hooks let a caller watch a run from inside, as plugintest does to record
// each stage's error and duration. Every field is optional; hooks are
// called from the goroutine of Runner.Run, in stage order.
type Hooks struct {
	// StageError is called with every error a component returned from a
	// stage (a panic as a task.InternalError), as the component returned
	// it: before the runner prefixes it with the component's name.
	// component is "engine" or "plugin <name>".
	StageError func(stage Stage, component string, err error)
	// StageDone is called after each plugin stage with how long all task
	// plugins together took.
	StageDone func(stage Stage, d time.Duration)
	// Builder is called with the engine's sandbox builder once every
	// component accepted the payload, before Prepare.
	Builder func(engines.SandboxBuilder)
	// Result is called with the engine's result when Wait returned; the
	// ResultSet it returns is what the Stopped stage sees (return the
	// argument to leave it as it is).
	Result func(engines.ResultSet) engines.ResultSet
	// Stopped is called with each task plugin's ok from Stopped.
	Stopped func(component string, ok bool)
}

// Run executes one run to its end and returns its outcome. tc must have
// TaskID, RunID, Definition, TaskDir (existing), Log, LogPath and Artifacts
// set. Run writes the log header and footer, never panics because of an
// engine or plugin (a panic is exception/internal-error for this run), and
// always calls Dispose on every task plugin it created. ctl may be nil.
func (r *Runner) Run(ctx context.Context, tc *task.Context, ctl *Control) Outcome {
	if ctl == nil {
		ctl = NewControl()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	preCtx, cancelPre := context.WithCancel(ctx)
	defer cancelPre()
	ctl.mu.Lock()
	ctl.cancel, ctl.cancelPre = cancel, cancelPre
	switch ctl.mode {
	case stopCancel:
		cancel()
	case stopShutdown:
		cancelPre()
	}
	ctl.mu.Unlock()

	ru := &run{r: r, tc: tc, ctl: ctl, ctx: ctx, preCtx: preCtx, hooks: r.Hooks}
	if ru.hooks == nil {
		ru.hooks = &Hooks{}
	}
	r.writeHeader(tc)
	out := ru.execute()
	if ctl.stopped() == stopCancel {
		out.Resolution = task.Resolution{State: task.Exception, Reason: task.ReasonCanceled}
	}
	return out
}

// Close closes every plugin (in reverse order) and then the engine.
func (r *Runner) Close() error {
	var errs []error
	for i := len(r.Plugins) - 1; i >= 0; i-- {
		if err := r.Plugins[i].Plugin.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing plugin %s: %w", r.Plugins[i].Name, err))
		}
	}
	if r.Engine != nil {
		if err := r.Engine.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing engine: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}
