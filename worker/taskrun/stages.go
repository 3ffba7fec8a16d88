package taskrun

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Stage names one stage of a run: a call the runner makes on the engine, on
// every task plugin, or on the plugins that were never created.
type Stage string

// Stages in the order a run goes through them. CheckPayload and
// AcceptPayload are the runner's own; the others name the engine or plugin
// method they call.
const (
	StageCheckPayload      Stage = "CheckPayload"
	StageNewTaskPlugin     Stage = "NewTaskPlugin"
	StageNewSandboxBuilder Stage = "NewSandboxBuilder"
	StageAcceptPayload     Stage = "AcceptPayload"
	StagePrepare           Stage = "Prepare"
	StageBuildSandbox      Stage = "BuildSandbox"
	StageStart             Stage = "Start"
	StageStarted           Stage = "Started"
	StageWait              Stage = "Wait"
	StageStopped           Stage = "Stopped"
	StageFinished          Stage = "Finished"
	StageException         Stage = "Exception"
	StageRunEndedEarly     Stage = "RunEndedEarly"
	StageDispose           Stage = "Dispose"
	// Clean-up calls on the engine's objects.
	StageDiscard Stage = "Discard"
	StageAbort   Stage = "Abort"
)

// stageResult is reading the engine's ResultSet (exit code, duration...).
const stageResult Stage = "result"

// errorRule is what an error of a stage does to the run.
type errorRule int

const (
	// endRun: the error is the run's exception; the run ends.
	endRun errorRule = iota
	// endRunUnlessStopped: as endRun, but a stop asked for meanwhile
	// (Control.Shutdown or Cancel) is the exception instead: its
	// cancellation is what made the stage fail.
	endRunUnlessStopped
	// endRunOrStop: as endRunUnlessStopped, and a stop asked for meanwhile
	// ends the run even when the stage succeeded; so does an exception an
	// earlier killTask stage recorded.
	endRunOrStop
	// killTask: the task is killed and the run goes on, so that every
	// plugin still sees its result; the error is the run's exception.
	killTask
)

// A step is one row of the stage table.
type step struct {
	stage Stage
	// each is what a plugin stage calls on every created task plugin, in
	// declared order; all are called, the first error is the stage's.
	each func(ru *run, ctx context.Context, tp plugins.TaskPlugin) error
	// do is a stage of the engine or of the runner itself.
	do func(ru *run, ctx context.Context) error
	// beforeStart stages get the context a shutdown cancels too (a long
	// download or image pull is cut short); the others only stop when the
	// Queue cancels the run, so a killed task's results are still
	// collected.
	beforeStart bool
	onError     errorRule
}

// sequence is the stage table: every run goes through these stages in
// order until one ends it. Then Finished (or Exception, and RunEndedEarly
// for plugins never created) and Dispose end it; see run.finish and
// run.endException.
var sequence = []step{
	{stage: StageCheckPayload, do: (*run).checkPayload, onError: endRun},
	// Task plugins, then the engine, decode their payload fields. Every
	// malformed-payload reason is collected, so the task author sees all
	// of them in one run; AcceptPayload then refuses the payload.
	{stage: StageNewTaskPlugin, do: (*run).newTaskPlugins, beforeStart: true, onError: endRunUnlessStopped},
	{stage: StageNewSandboxBuilder, do: (*run).newSandboxBuilder, beforeStart: true, onError: endRunUnlessStopped},
	{stage: StageAcceptPayload, do: (*run).acceptPayload, onError: endRun},
	{stage: StagePrepare, each: prepare, beforeStart: true, onError: endRunUnlessStopped},
	{stage: StageBuildSandbox, each: buildSandbox, beforeStart: true, onError: endRunOrStop},
	{stage: StageStart, do: (*run).start, beforeStart: true, onError: endRunUnlessStopped},
	{stage: StageStarted, each: started, onError: killTask},
	{stage: StageWait, do: (*run).wait, onError: endRun},
	// Every plugin sees the result (artifacts are collected even after a
	// kill); a shutdown after the task ended changes nothing.
	{stage: StageStopped, each: stopped, onError: endRunOrStop},
}

func prepare(_ *run, ctx context.Context, tp plugins.TaskPlugin) error { return tp.Prepare(ctx) }

func buildSandbox(ru *run, ctx context.Context, tp plugins.TaskPlugin) error {
	return tp.BuildSandbox(ctx, ru.builder)
}

func started(ru *run, ctx context.Context, tp plugins.TaskPlugin) error {
	return tp.Started(ctx, ru.sandbox)
}

func stopped(ru *run, ctx context.Context, tp plugins.TaskPlugin) error {
	ok, err := tp.Stopped(ctx, ru.result)
	if !ok {
		ru.ok = false
	}
	if ru.hooks.Stopped != nil {
		ru.hooks.Stopped(ru.current, ok)
	}
	return err
}

// run is the state of one run inside Runner.Run.
type run struct {
	r       *Runner
	tc      *task.Context
	ctl     *Control
	hooks   *Hooks
	ctx     context.Context // cancelled when the Queue cancels the run
	preCtx  context.Context // cancelled by a shutdown too; for stages before the task starts
	created []createdPlugin // task plugins created so far, in order
	current string          // the component of the plugin stage call under way

	malformed    []string // malformed-payload reasons of NewTaskPlugin and NewSandboxBuilder
	sawMalformed bool

	builder  engines.SandboxBuilder
	sandbox  engines.Sandbox
	result   engines.ResultSet // what Stopped sees (Hooks.Result may wrap the engine's)
	ok       bool              // the result's Success, ANDed with each plugin's Stopped
	killed   bool
	oom      bool
	cleanups []func() // engine clean-ups, run in reverse order

	out     Outcome
	exc     *task.ExceptionError
	reasons []string
}

type createdPlugin struct {
	index int // in Runner.Plugins
	name  string
	tp    plugins.TaskPlugin
}

// execute runs the stage table, then ends the run: Finished when every
// stage passed, the exception otherwise.
func (ru *run) execute() Outcome {
	ru.out = Outcome{ExitCode: -1}
	defer ru.dispose()
	defer ru.cleanUp()
	for _, s := range sequence {
		if ru.runStep(s) {
			return ru.endException()
		}
	}
	return ru.finish()
}

// runStep runs one stage and applies its error rule; it reports whether
// the run ends here.
func (ru *run) runStep(s step) (end bool) {
	ctx := ru.ctx
	if s.beforeStart {
		ctx = ru.preCtx
	}
	var err error
	if s.each != nil {
		err = ru.stage(ctx, s.stage, func(tp plugins.TaskPlugin) error { return s.each(ru, ctx, tp) })
	} else {
		done := ru.debugStage(s.stage)
		err = s.do(ru, ctx)
		done(err)
	}
	switch s.onError {
	case killTask:
		if err != nil {
			_ = ru.sandbox.Kill()
			ru.fail(err)
		}
		return false
	case endRunOrStop:
		if ee := ru.ctl.exception(); ee != nil {
			ru.fail(ee)
		}
		ru.fail(err)
		return ru.exc != nil
	case endRunUnlessStopped:
		if err != nil {
			ru.failPre(err)
		}
	default:
		ru.fail(err)
	}
	return err != nil
}

func (ru *run) checkPayload(context.Context) error {
	return ru.r.CheckPayload(ru.tc.Definition.Payload)
}

// collect records a malformed-payload error and reports whether err was
// one.
func (ru *run) collect(err error) bool {
	var ee *task.ExceptionError
	if !errors.As(err, &ee) || ee.Reason != task.ReasonMalformedPayload {
		return false
	}
	ru.sawMalformed = true
	ru.malformed = append(ru.malformed, ee.Reasons...)
	if len(ee.Reasons) == 0 && ee.Err != nil {
		ru.malformed = append(ru.malformed, ee.Err.Error())
	}
	return true
}

func (ru *run) newTaskPlugins(ctx context.Context) error {
	for i, p := range ru.r.Plugins {
		var tp plugins.TaskPlugin
		err := ru.call(StageNewTaskPlugin, "plugin "+p.Name, func() error {
			var err error
			tp, err = p.Plugin.NewTaskPlugin(ctx, ru.tc)
			return err
		})
		if err == nil && tp == nil {
			err = task.InternalError(fmt.Errorf("plugin %s returned no task plugin", p.Name))
		}
		if err != nil {
			if ru.collect(err) {
				continue
			}
			return err
		}
		ru.created = append(ru.created, createdPlugin{i, p.Name, tp})
	}
	return nil
}

func (ru *run) newSandboxBuilder(ctx context.Context) error {
	err := ru.call(StageNewSandboxBuilder, "engine", func() error {
		var err error
		ru.builder, err = ru.r.Engine.NewSandboxBuilder(ctx, ru.tc)
		if err == nil && ru.builder == nil {
			err = errors.New("engine returned no sandbox builder")
		}
		return err
	})
	if ru.builder != nil {
		ru.cleanups = append(ru.cleanups, func() {
			if ru.sandbox == nil {
				_ = ru.call(StageDiscard, "engine", ru.builder.Discard)
			}
		})
	}
	if err != nil && !ru.collect(err) {
		return err
	}
	return nil
}

// acceptPayload refuses the payload with every malformed-payload reason
// the plugins and the engine gave.
func (ru *run) acceptPayload(context.Context) error {
	if !ru.sawMalformed {
		ru.ctl.reportHandlesTo(ru.builder)
		if ru.hooks.Builder != nil {
			ru.hooks.Builder(ru.builder)
		}
		return nil
	}
	if len(ru.malformed) == 0 {
		ru.malformed = []string{"payload: rejected (no reason given by the plugin or engine)"}
	}
	return task.MalformedPayload(ru.malformed...)
}

func (ru *run) start(ctx context.Context) error {
	ru.ctl.beforeStart(ru.builder)
	var sandbox engines.Sandbox
	err := ru.call(StageStart, "engine", func() error {
		var err error
		sandbox, err = ru.builder.Start(ctx)
		if err == nil && sandbox == nil {
			err = errors.New("engine started no sandbox")
		}
		return err
	})
	if err != nil {
		return err
	}
	ru.sandbox = sandbox
	ru.ctl.attach(sandbox)
	// A task never outlives its run.
	ru.cleanups = append(ru.cleanups, func() { _ = ru.call(StageAbort, "engine", sandbox.Abort) })
	return nil
}

// wait waits for the task to end and reads its result.
func (ru *run) wait(ctx context.Context) error {
	var result engines.ResultSet
	err := ru.call(StageWait, "engine", func() error {
		var err error
		// Wait is bounded by the task's own stop conditions (maxRunTime,
		// Control), not by ctx: an unrelated cancellation must not leave a
		// process behind, so the engine is asked to abort instead.
		result, err = ru.sandbox.Wait(context.WithoutCancel(ctx))
		if err == nil && result == nil {
			err = errors.New("engine returned no result")
		}
		return err
	})
	if errors.Is(err, engines.ErrAborted) {
		return stopException(stopCancel)
	}
	if err != nil {
		return err
	}
	ru.ctl.taskEnded()
	ru.cleanups = append(ru.cleanups, func() { _ = ru.call(StageDispose, "engine", result.Dispose) })
	ru.result = result
	if ru.hooks.Result != nil {
		ru.result = ru.hooks.Result(result)
	}
	if err := ru.call(stageResult, "engine", func() error {
		ru.out.ExitCode, ru.out.Duration = ru.result.ExitCode(), ru.result.Duration()
		ru.ok, ru.killed, ru.oom = ru.result.Success(), ru.result.Killed(), ru.result.OOM()
		return nil
	}); err != nil {
		return err
	}
	if ru.oom {
		ru.tc.Logf("task was killed: out of memory")
	}
	return nil
}

// finish resolves a run whose stages all passed: completed, or failed with
// the reasons; then Finished, whose error turns the run into that
// exception (and calls Exception).
func (ru *run) finish() Outcome {
	out := ru.out
	out.Resolution = task.Resolution{State: task.Completed}
	if !ru.ok {
		out.Resolution.State = task.Failed
		ru.reasons = append(ru.reasons, ru.failureReasons()...)
	}
	out.Reasons = ru.reasons
	ru.r.writeFooter(ru.tc, out)
	ctx := ru.ctx
	if err := ru.stage(ctx, StageFinished, func(tp plugins.TaskPlugin) error { return tp.Finished(ctx, out.Resolution) }); err != nil {
		ru.fail(err)
		res := ru.resolution()
		ru.tc.Logf("resolution changed to %s", res)
		out.Resolution, out.Reasons, out.Exception = res, ru.reasons, ru.exc
		_ = ru.stage(ctx, StageException, func(tp plugins.TaskPlugin) error { return tp.Exception(ctx, res) })
	}
	return out
}

// failureReasons explains a failed task: the plugins' explanations (after
// the command's exit code when it exited non-zero on its own), else what
// the result says.
func (ru *run) failureReasons() []string {
	if explained := ru.tc.Explanations(); len(explained) > 0 {
		if ru.out.ExitCode > 0 && !ru.killed && !ru.oom {
			return append([]string{fmt.Sprintf("task exited with code %d", ru.out.ExitCode)}, explained...)
		}
		return explained
	}
	switch {
	case ru.killed:
		return []string{"task was killed by the worker"}
	case ru.oom:
		return []string{"task ran out of memory"}
	case ru.out.ExitCode < 0:
		return []string{"task was terminated by a signal (see the task log)"}
	case ru.out.ExitCode != 0:
		return []string{fmt.Sprintf("task exited with code %d", ru.out.ExitCode)}
	}
	return []string{"a plugin failed the task (see the task log)"}
}

// endException ends the run with the recorded exception: footer,
// Exception for the created task plugins, and RunEndedEarly for plugins
// that were never created. A run the Queue cancelled ends silently:
// nothing is reported or uploaded for it by the plugins (the worker's
// Queue sink still uploads the task log to the artifact it created for it
// when the run started).
func (ru *run) endException() Outcome {
	out := ru.out
	out.Resolution = ru.resolution()
	out.Reasons = ru.reasons
	out.Exception = ru.exc
	if ru.exc.Reason == task.ReasonCanceled || ru.ctl.stopped() == stopCancel {
		return out
	}
	ctx := ru.ctx
	ru.r.writeFooter(ru.tc, out)
	_ = ru.stage(ctx, StageException, func(tp plugins.TaskPlugin) error { return tp.Exception(ctx, out.Resolution) })
	ru.notifyUncreated(out.Resolution)
	return out
}

func (ru *run) resolution() task.Resolution {
	return task.Resolution{State: task.Exception, Reason: ru.exc.Reason}
}

func (ru *run) notifyUncreated(res task.Resolution) {
	created := map[int]bool{}
	for _, cp := range ru.created {
		created[cp.index] = true
	}
	for i, p := range ru.r.Plugins {
		if created[i] {
			continue
		}
		if h, ok := p.Plugin.(plugins.UnstartedRunHandler); ok {
			err := ru.call(StageRunEndedEarly, "plugin "+p.Name, func() error { return h.RunEndedEarly(ru.ctx, ru.tc, res) })
			if err != nil {
				ru.r.logger().Error("plugin failed on early-ended run", "plugin", p.Name, "error", err)
			}
		}
	}
}

// cleanUp releases the engine's objects, latest first: the result, the
// sandbox (aborted), the builder when no sandbox was started.
func (ru *run) cleanUp() {
	for i := len(ru.cleanups) - 1; i >= 0; i-- {
		ru.cleanups[i]()
	}
}

// dispose calls Dispose on every created task plugin, in reverse order,
// even after a cancellation.
func (ru *run) dispose() {
	ctx := context.WithoutCancel(ru.ctx)
	done := ru.debugStage(StageDispose)
	defer done(nil)
	for i := len(ru.created) - 1; i >= 0; i-- {
		cp := ru.created[i]
		if err := ru.call(StageDispose, "plugin "+cp.name, func() error { return cp.tp.Dispose(ctx) }); err != nil {
			ru.r.logger().Error("dispose failed", "plugin", cp.name, "error", err)
		}
	}
}

// stage calls f for every created task plugin in order and returns the
// first error (all plugins still run, so each can clean up its part); a
// cancelled ctx is the stage's error when no plugin returned one.
func (ru *run) stage(ctx context.Context, name Stage, f func(plugins.TaskPlugin) error) (err error) {
	done := ru.debugStage(name)
	defer func() { done(err) }()
	start := time.Now()
	var first error
	for _, cp := range ru.created {
		ru.current = "plugin " + cp.name
		err := ru.call(name, ru.current, func() error { return f(cp.tp) })
		if err != nil && first == nil {
			first = err
		} else if err != nil {
			ru.r.logger().Warn("further stage error", "stage", name, "plugin", cp.name, "error", err)
			// call names the plugin and stage, except in an ExceptionError.
			msg, prefix := err.Error(), fmt.Sprintf("%s: %s: ", ru.current, name)
			if !strings.HasPrefix(msg, prefix) {
				msg = prefix + msg
			}
			ru.tc.Logf("%s", msg)
		}
		if ctx.Err() != nil && first == nil {
			first = ctx.Err()
		}
	}
	if ru.hooks.StageDone != nil {
		ru.hooks.StageDone(name, time.Since(start))
	}
	return first
}

// call runs one stage function of component who, turning a panic into
// internal-error and prefixing an error that is no *task.ExceptionError
// with who and the stage.
func (ru *run) call(stage Stage, who string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			ru.r.logger().Error("panic in stage", "stage", stage, "component", who, "panic", p, "stack", string(debug.Stack()))
			err = task.InternalError(fmt.Errorf("%s panicked in %s: %v", who, stage, p))
			ru.stageError(stage, who, err)
		}
	}()
	if err := f(); err != nil {
		ru.stageError(stage, who, err)
		var ee *task.ExceptionError
		if errors.As(err, &ee) {
			return err
		}
		return fmt.Errorf("%s: %s: %w", who, stage, err)
	}
	return nil
}

func (ru *run) stageError(stage Stage, who string, err error) {
	if ru.hooks.StageError != nil {
		ru.hooks.StageError(stage, who, err)
	}
}

// failPre records the error of a stage before the task started; when the
// run was stopped meanwhile, the stop is the cause (its cancellation is
// what made the stage fail).
func (ru *run) failPre(err error) {
	if ee := ru.ctl.exception(); ee != nil {
		ru.fail(ee)
	}
	ru.fail(err)
}

// fail records err as the run's exception unless one is recorded already,
// and writes its reasons to the task log.
func (ru *run) fail(err error) {
	if err == nil || ru.exc != nil {
		return
	}
	var ee *task.ExceptionError
	if !errors.As(err, &ee) {
		ee = task.InternalError(err)
	}
	ru.exc = ee
	ru.reasons = append(ru.reasons, exceptionLines(ee)...)
	for _, line := range exceptionLines(ee) {
		ru.tc.Logf("%s", line)
	}
}

func exceptionLines(ee *task.ExceptionError) []string {
	var lines []string
	for _, r := range ee.Reasons {
		lines = append(lines, fmt.Sprintf("%s: %s", ee.Reason, r))
	}
	if ee.Err != nil || len(lines) == 0 {
		msg := string(ee.Reason)
		if ee.Err != nil {
			msg += ": " + ee.Err.Error()
		}
		lines = append(lines, msg)
	}
	return lines
}
