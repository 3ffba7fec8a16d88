package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Runner executes task runs with one engine and the profile's plugins. It
// owns the stage order and the mapping from what happened to a Taskcluster
// resolution; it is shared by `run` (one local task) and `work` (the claim
// loop). A Runner is safe for concurrent use: runs of a worker with capacity
// above one overlap.
type Runner struct {
	Engine      engines.Engine
	Plugins     []NamedPlugin // in declared stage order
	Payload     *Schema       // composed payload schema
	Unsupported []Unsupported
	Info        task.WorkerInfo
	Logger      *slog.Logger
}

// NamedPlugin is a constructed plugin with its profile name.
type NamedPlugin struct {
	Name   string
	Plugin plugins.Plugin
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
}

// Reported reports whether the outcome must be reported to the Queue: a run
// cancelled by the Queue (reclaim answered 409) is not.
func (o Outcome) Reported() bool { return o.Resolution.Reason != task.ReasonCanceled }

// Control lets the caller stop a run while it executes. The zero value is
// not usable; use NewControl. Methods are safe for concurrent use and may be
// called before the task has started (the stop then happens as soon as it
// would start) or after it ended (no effect).
type Control struct {
	mu        sync.Mutex
	sandbox   engines.Sandbox
	mode      stopMode
	cancel    context.CancelFunc // cancels the run's context (Cancel)
	cancelPre context.CancelFunc // cancels the stages before the task starts (Shutdown, Cancel)
	ended     bool               // the task has ended (Wait returned)
	// shutdownHit: Shutdown came before the task ended, so the run is a
	// worker-shutdown; a Shutdown after the task ended (say during its
	// artifact uploads) does not turn a completed run into one.
	shutdownHit bool
}

type stopMode int

const (
	notStopped stopMode = iota
	stopShutdown
	stopCancel
)

// NewControl returns a Control for one run.
func NewControl() *Control { return &Control{} }

// Shutdown stops the run because the worker is stopping: stages before the
// task starts (downloads, image pulls) are cancelled, a running task is
// killed and its results still collected; the run resolves
// exception/worker-shutdown. A task that already ended keeps its
// resolution.
func (c *Control) Shutdown() { c.stop(stopShutdown) }

// Cancel aborts the task because the Queue no longer considers the run ours
// (reclaim answered 409): everything stops, nothing is uploaded, and the
// outcome is not to be reported.
func (c *Control) Cancel() { c.stop(stopCancel) }

// stop records the stop under the lock and acts on it after unlocking, so a
// slow Kill (a container engine's API call) never blocks other callers.
func (c *Control) stop(m stopMode) {
	c.mu.Lock()
	if m <= c.mode {
		c.mu.Unlock()
		return
	}
	c.mode = m
	if m == stopShutdown && !c.ended {
		c.shutdownHit = true
	}
	sb, cancel, pre := c.sandbox, c.cancel, c.cancelPre
	c.mu.Unlock()
	if pre != nil {
		pre()
	}
	if sb != nil {
		if m == stopCancel {
			_ = sb.Abort()
		} else {
			_ = sb.Kill()
		}
	}
	if m == stopCancel && cancel != nil {
		cancel()
	}
}

func (c *Control) stopped() stopMode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode
}

// exception is the stop exception that applies to the run, or nil.
func (c *Control) exception() *task.ExceptionError {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.mode == stopCancel:
		return stopException(stopCancel)
	case c.shutdownHit:
		return stopException(stopShutdown)
	}
	return nil
}

// taskEnded records that Wait returned.
func (c *Control) taskEnded() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
}

// attach records the running sandbox; if a stop was already asked for, it
// is applied at once.
func (c *Control) attach(s engines.Sandbox) {
	c.mu.Lock()
	c.sandbox = s
	m := c.mode
	c.mu.Unlock()
	switch m {
	case stopCancel:
		_ = s.Abort()
	case stopShutdown:
		_ = s.Kill()
	}
}

// run is the state of one run inside Runner.Run.
type run struct {
	r       *Runner
	tc      *task.Context
	ctl     *Control
	created []createdPlugin // task plugins created so far, in order
	exc     *task.ExceptionError
	reasons []string
}

type createdPlugin struct {
	name string
	tp   plugins.TaskPlugin
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

	ru := &run{r: r, tc: tc, ctl: ctl}
	r.writeHeader(tc)
	out := ru.execute(ctx, preCtx)
	if ctl.stopped() == stopCancel {
		out.Resolution = task.Resolution{State: task.Exception, Reason: task.ReasonCanceled}
	}
	return out
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

// call runs one stage function, turning a panic into internal-error.
func (ru *run) call(stage, who string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			ru.r.logger().Error("panic in stage", "stage", stage, "component", who, "panic", p, "stack", string(debug.Stack()))
			err = task.InternalError(fmt.Errorf("%s panicked in %s: %v", who, stage, p))
		}
	}()
	if err := f(); err != nil {
		var ee *task.ExceptionError
		if errors.As(err, &ee) {
			return err
		}
		return fmt.Errorf("%s: %s: %w", who, stage, err)
	}
	return nil
}

// execute runs the stages. Stages before the task starts get preCtx, which
// a shutdown cancels too; the rest get ctx, which only a cancellation by
// the Queue cancels (uploads after a shutdown kill must still happen).
func (ru *run) execute(ctx, preCtx context.Context) Outcome {
	r, tc := ru.r, ru.tc
	out := Outcome{ExitCode: -1}

	defer ru.dispose(ctx)

	// 1. The payload: fields this profile lacks, then the composed schema.
	if err := ru.checkPayload(); err != nil {
		ru.fail(err)
		return ru.endException(ctx, out)
	}

	// 2. Task plugins, then the engine, decode their payload fields. Every
	// malformed-payload reason is collected, so the task author sees all of
	// them in one run; any other error ends the run at once.
	var malformed []string
	sawMalformed := false
	collect := func(err error) bool {
		var ee *task.ExceptionError
		if errors.As(err, &ee) && ee.Reason == task.ReasonMalformedPayload {
			sawMalformed = true
			malformed = append(malformed, ee.Reasons...)
			if len(ee.Reasons) == 0 && ee.Err != nil {
				malformed = append(malformed, ee.Err.Error())
			}
			return true
		}
		return false
	}
	for _, p := range r.Plugins {
		var tp plugins.TaskPlugin
		err := ru.call("NewTaskPlugin", "plugin "+p.Name, func() error {
			var err error
			tp, err = p.Plugin.NewTaskPlugin(preCtx, tc)
			return err
		})
		if err == nil && tp == nil {
			err = task.InternalError(fmt.Errorf("plugin %s returned no task plugin", p.Name))
		}
		if err != nil {
			if collect(err) {
				continue
			}
			ru.failPre(err)
			return ru.endException(ctx, out)
		}
		ru.created = append(ru.created, createdPlugin{p.Name, tp})
	}
	var builder engines.SandboxBuilder
	if err := ru.call("NewSandboxBuilder", "engine", func() error {
		var err error
		builder, err = r.Engine.NewSandboxBuilder(preCtx, tc)
		if err == nil && builder == nil {
			err = errors.New("engine returned no sandbox builder")
		}
		return err
	}); err != nil && !collect(err) {
		ru.failPre(err)
		return ru.endException(ctx, out)
	}
	started := false
	defer func() {
		if !started && builder != nil {
			_ = ru.call("Discard", "engine", builder.Discard)
		}
	}()
	if sawMalformed {
		if len(malformed) == 0 {
			malformed = []string{"payload: rejected (no reason given by the plugin or engine)"}
		}
		ru.fail(task.MalformedPayload(malformed...))
		return ru.endException(ctx, out)
	}

	// 4. Prepare and BuildSandbox.
	if err := ru.stage(preCtx, "Prepare", func(tp plugins.TaskPlugin) error { return tp.Prepare(preCtx) }); err != nil {
		ru.failPre(err)
		return ru.endException(ctx, out)
	}
	if err := ru.stage(preCtx, "BuildSandbox", func(tp plugins.TaskPlugin) error { return tp.BuildSandbox(preCtx, builder) }); err != nil {
		ru.failPre(err)
		return ru.endException(ctx, out)
	}
	if ee := ru.ctl.exception(); ee != nil {
		ru.fail(ee)
		return ru.endException(ctx, out)
	}

	// 5. Start, Started, Wait.
	var sandbox engines.Sandbox
	if err := ru.call("Start", "engine", func() error {
		var err error
		sandbox, err = builder.Start(preCtx)
		if err == nil && sandbox == nil {
			err = errors.New("engine started no sandbox")
		}
		return err
	}); err != nil {
		ru.failPre(err)
		return ru.endException(ctx, out)
	}
	started = true
	ru.ctl.attach(sandbox)
	defer func() { _ = ru.call("Abort", "engine", sandbox.Abort) }() // a task never outlives its run
	if err := ru.stage(ctx, "Started", func(tp plugins.TaskPlugin) error { return tp.Started(ctx, sandbox) }); err != nil {
		_ = sandbox.Kill()
		ru.fail(err)
	}

	var result engines.ResultSet
	if err := ru.call("Wait", "engine", func() error {
		var err error
		// Wait is bounded by the task's own stop conditions (maxRunTime,
		// Control), not by ctx: an unrelated cancellation must not leave a
		// process behind, so the engine is asked to abort instead.
		result, err = sandbox.Wait(context.WithoutCancel(ctx))
		if err == nil && result == nil {
			err = errors.New("engine returned no result")
		}
		return err
	}); err != nil {
		if errors.Is(err, engines.ErrAborted) {
			ru.fail(stopException(stopCancel))
		} else {
			ru.fail(err)
		}
		return ru.endException(ctx, out)
	}
	ru.ctl.taskEnded()
	defer func() { _ = ru.call("Dispose", "engine", result.Dispose) }()
	var ok, killed, oom bool
	if err := ru.call("result", "engine", func() error {
		out.ExitCode, out.Duration = result.ExitCode(), result.Duration()
		ok, killed, oom = result.Success(), result.Killed(), result.OOM()
		return nil
	}); err != nil {
		ru.fail(err)
		return ru.endException(ctx, out)
	}
	if oom {
		tc.Logf("task was killed: out of memory")
	}

	// 6. Stopped: every plugin sees the result (artifacts are collected
	// even after a kill).
	stoppedErr := ru.stage(ctx, "Stopped", func(tp plugins.TaskPlugin) error {
		pok, err := tp.Stopped(ctx, result)
		if !pok {
			ok = false
		}
		return err
	})
	if ee := ru.ctl.exception(); ee != nil { // a shutdown after the task ended changes nothing
		ru.fail(ee)
	}
	ru.fail(stoppedErr)
	if ru.exc != nil {
		return ru.endException(ctx, out)
	}

	// 7. Resolution and Finished.
	out.Resolution = task.Resolution{State: task.Completed}
	if !ok {
		out.Resolution.State = task.Failed
		explained := tc.Explanations()
		ru.reasons = append(ru.reasons, explained...)
		switch {
		case len(explained) > 0:
		case killed:
			ru.reasons = append(ru.reasons, "task was killed by the worker")
		case oom:
			ru.reasons = append(ru.reasons, "task ran out of memory")
		case out.ExitCode < 0:
			ru.reasons = append(ru.reasons, "task was terminated by a signal (see the task log)")
		case out.ExitCode != 0:
			ru.reasons = append(ru.reasons, fmt.Sprintf("task exited with code %d", out.ExitCode))
		default:
			ru.reasons = append(ru.reasons, "a plugin failed the task (see the task log)")
		}
	}
	out.Reasons = ru.reasons
	r.writeFooter(tc, out)
	if err := ru.stage(ctx, "Finished", func(tp plugins.TaskPlugin) error { return tp.Finished(ctx, out.Resolution) }); err != nil {
		ru.fail(err)
		res := ru.resolution()
		tc.Logf("resolution changed to %s", res)
		out.Resolution = res
		out.Reasons = ru.reasons
		_ = ru.stage(ctx, "Exception", func(tp plugins.TaskPlugin) error { return tp.Exception(ctx, res) })
	}
	return out
}

func stopException(m stopMode) *task.ExceptionError {
	if m == stopCancel {
		return &task.ExceptionError{Reason: task.ReasonCanceled, Reasons: []string{"run cancelled by the Queue; stopping without reporting"}}
	}
	return &task.ExceptionError{Reason: task.ReasonWorkerShutdown, Reasons: []string{"worker is shutting down; task stopped"}}
}

// stage calls f for every created task plugin in order and returns the
// first error (all plugins still run, so each can clean up its part).
func (ru *run) stage(ctx context.Context, name string, f func(plugins.TaskPlugin) error) error {
	var first error
	for _, cp := range ru.created {
		err := ru.call(name, "plugin "+cp.name, func() error { return f(cp.tp) })
		if err != nil && first == nil {
			first = err
		} else if err != nil {
			ru.r.logger().Warn("further stage error", "stage", name, "plugin", cp.name, "error", err)
			ru.tc.Logf("plugin %s: %s: %v", cp.name, name, err)
		}
		if ctx.Err() != nil && first == nil {
			first = ctx.Err()
		}
	}
	return first
}

func (ru *run) resolution() task.Resolution {
	return task.Resolution{State: task.Exception, Reason: ru.exc.Reason}
}

// endException ends a run whose task plugins exist with the recorded
// exception: footer, Exception stage, and RunEndedEarly for plugins that
// were never created.
func (ru *run) endException(ctx context.Context, out Outcome) Outcome {
	out.Resolution = ru.resolution()
	out.Reasons = ru.reasons
	if ru.exc.Reason == task.ReasonCanceled || ru.ctl.stopped() == stopCancel {
		return out // nothing is reported or uploaded for a cancelled run
	}
	ru.r.writeFooter(ru.tc, out)
	_ = ru.stage(ctx, "Exception", func(tp plugins.TaskPlugin) error { return tp.Exception(ctx, out.Resolution) })
	ru.notifyUncreated(ctx, out.Resolution)
	return out
}

func (ru *run) notifyUncreated(ctx context.Context, res task.Resolution) {
	created := map[string]bool{}
	for _, cp := range ru.created {
		created[cp.name] = true
	}
	for _, p := range ru.r.Plugins {
		if created[p.Name] {
			continue
		}
		if h, ok := p.Plugin.(plugins.UnstartedRunHandler); ok {
			if err := ru.call("RunEndedEarly", "plugin "+p.Name, func() error { return h.RunEndedEarly(ctx, ru.tc, res) }); err != nil {
				ru.r.logger().Error("plugin failed on early-ended run", "plugin", p.Name, "error", err)
			}
		}
	}
}

func (ru *run) dispose(ctx context.Context) {
	for i := len(ru.created) - 1; i >= 0; i-- {
		cp := ru.created[i]
		if err := ru.call("Dispose", "plugin "+cp.name, func() error { return cp.tp.Dispose(context.WithoutCancel(ctx)) }); err != nil {
			ru.r.logger().Error("dispose failed", "plugin", cp.name, "error", err)
		}
	}
}

// checkPayload rejects payload fields this profile lacks, then validates
// the payload against the composed schema.
func (ru *run) checkPayload() error {
	payload := ru.tc.Definition.Payload
	if len(payload) == 0 {
		return task.MalformedPayload("payload: missing; the task definition has no payload")
	}
	var doc any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return task.MalformedPayloadf("payload: not valid JSON: %v", err)
	}
	var reasons []string
	if obj, ok := doc.(map[string]any); ok {
		for _, u := range ru.r.Unsupported {
			if hasPath(obj, u.Path) {
				reasons = append(reasons, fmt.Sprintf("payload.%s: this worker's profile (%s) lacks support for it (it needs %s); run the task on a worker whose profile includes it, or remove the field",
					u.Path, ru.r.Info.Profile, u.Feature))
				deletePath(obj, u.Path) // the schema speaks about the rest
			}
		}
	}
	if ru.r.Payload != nil {
		reasons = append(reasons, ru.r.Payload.ValidateValue("payload", doc)...)
	}
	if len(reasons) > 0 {
		return task.MalformedPayload(reasons...)
	}
	return nil
}

// deletePath removes the dot-separated path from obj, and parents it
// leaves empty.
func deletePath(obj map[string]any, path string) {
	head, rest, nested := strings.Cut(path, ".")
	if !nested {
		delete(obj, head)
		return
	}
	if m, ok := obj[head].(map[string]any); ok {
		deletePath(m, rest)
		if len(m) == 0 {
			delete(obj, head)
		}
	}
}

// hasPath reports whether the dot-separated path names a present field
// whose value is not false/null (a feature flag set to false is not a use).
func hasPath(obj map[string]any, path string) bool {
	parts := strings.Split(path, ".")
	var cur any = obj
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		cur, ok = m[p]
		if !ok {
			return false
		}
	}
	switch v := cur.(type) {
	case nil:
		return false
	case bool:
		return v
	}
	return true
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Runner) writeHeader(tc *task.Context) {
	w := r.Info
	tc.Logf("task %s run %d on worker %s/%s (workerPoolId %s), profile %s, workergen %s, engine %s",
		tc.TaskID, tc.RunID, orDash(w.WorkerGroup), orDash(w.WorkerID), orDash(w.WorkerPoolID), w.Profile, w.Version, w.Engine)
	if name := tc.Definition.Metadata.Name; name != "" {
		tc.Logf("task name: %s", name)
	}
}

func (r *Runner) writeFooter(tc *task.Context, out Outcome) {
	exit := "none"
	if out.ExitCode >= 0 {
		exit = fmt.Sprint(out.ExitCode)
	}
	tc.Logf("exit code: %s; task duration: %s; resolution: %s", exit, out.Duration.Round(time.Millisecond), out.Resolution)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
