// Package plugintest drives plugins through every stage of one task run
// against an engine (by default the deterministic engines/mock engine), the
// way the worker's runner does, and records what a test needs to judge the
// outcome: each stage's error, the ok values returned by Stopped, the
// resolution the run would get, the published artifacts (content read
// fully) and the task log.
//
// Typical use, in a plugin's tests:
//
//	p, _ := artifacts.New(plugins.Options{})
//	res := plugintest.Run(t, plugintest.Case{
//		Plugins: []plugins.Plugin{p},
//		Payload: map[string]any{
//			"mock":      map[string]any{"files": map[string]string{"a.txt": "hi"}},
//			"artifacts": []any{map[string]any{"type": "file", "path": "a.txt", "name": "public/a.txt"}},
//		},
//	})
//	require.Equal(t, task.Completed, res.Resolution.State)
//	a, ok := res.Artifact("public/a.txt")
//
// Stage semantics follow plugins.TaskPlugin's contract and worker.Runner:
// NewTaskPlugin for each plugin in order (an error ends the run early, and
// plugins not created get UnstartedRunHandler.RunEndedEarly); the engine's
// NewSandboxBuilder; Prepare and BuildSandbox for all plugins; Start;
// Started; Wait; Stopped for all plugins (ok from each, ANDed with the
// result's Success); Finished with the resolution, or Exception instead when
// a stage returned an error; Dispose for all created plugins in reverse
// order; ResultSet.Dispose. An error that is not a *task.ExceptionError
// counts as internal-error.
package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/mock"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Stage names a step of a run, for Result.Errors.
type Stage string

// Stages in the order a run goes through them.
const (
	StageNewTaskPlugin     Stage = "NewTaskPlugin"
	StageNewSandboxBuilder Stage = "NewSandboxBuilder"
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
)

// Case describes one run.
type Case struct {
	// Plugins are driven in this order (the profile's declared order);
	// usually one.
	Plugins []plugins.Plugin
	// Engine runs the task; nil means a new engines/mock engine (whose
	// script is the payload's `mock` field).
	Engine engines.Engine

	// Payload is the task payload: json.RawMessage and []byte are used as
	// they are, anything else is marshalled to JSON. Nil means {}.
	Payload any
	// Definition is the task definition; its Payload is replaced by
	// Payload. Zero Created, Deadline and Expires become now, now+1h and
	// now+24h (truncated to the second); an empty TaskGroupID becomes
	// TaskID.
	Definition task.Definition
	// TaskID defaults to "fSX7BJxeTBeZ7VPAV6yvRg"; RunID defaults to 0.
	TaskID string
	RunID  int
	// Worker identifies the worker (RootURL etc.).
	Worker task.WorkerInfo
	// Queue is the run's task.Context.Queue; nil as in run mode without a
	// rootUrl.
	Queue task.Queue

	// TaskDir is the run's task directory; empty means a fresh temporary
	// directory. Tests can fill it before the run.
	TaskDir string
	// Sink receives the artifacts; nil means a new Sink.
	Sink *Sink
	// ArtifactSink, when set, receives the artifacts instead of Sink (for
	// sinks with other behaviour); Result.Artifacts is then empty.
	ArtifactSink task.ArtifactSink

	// WrapResult, when set, replaces the engine's ResultSet before the
	// Stopped stage (for example to make files vanish mid-walk).
	WrapResult func(engines.ResultSet) engines.ResultSet

	// Timeout bounds the whole run; 0 means 2 minutes (generous: the
	// machine may be loaded). A run that times out fails the test.
	Timeout time.Duration
}

// Result is what happened during a run.
type Result struct {
	// Context is the run's task context (TaskDir, LogPath, Values...).
	Context *task.Context
	// Errors holds the first error of each stage that returned one.
	Errors map[Stage]error
	// StoppedOK is the AND of every plugin's Stopped ok (true when Stopped
	// was not reached or no plugin objected).
	StoppedOK bool
	// Durations holds how long each plugin stage took (all plugins
	// together), for stages that ran; for benchmarks.
	Durations map[Stage]time.Duration
	// TaskResult is the engine's result, nil if Wait was not reached.
	TaskResult engines.ResultSet
	// Builder is the engine's sandbox builder, nil if not created.
	Builder engines.SandboxBuilder
	// Resolution is what the run resolves to.
	Resolution task.Resolution
	// Exception is the error that made the run an exception, or nil.
	Exception error
	// Artifacts are the published artifacts in publication order.
	Artifacts []Recorded
	// Log is the complete task log.
	Log string
}

// Err returns the error recorded for stage, or nil.
func (r *Result) Err(stage Stage) error { return r.Errors[stage] }

// Artifact returns the last artifact published under name.
func (r *Result) Artifact(name string) (Recorded, bool) {
	for i := len(r.Artifacts) - 1; i >= 0; i-- {
		if r.Artifacts[i].Name == name {
			return r.Artifacts[i], true
		}
	}
	return Recorded{}, false
}

// ArtifactNames returns the names of the published artifacts, sorted.
func (r *Result) ArtifactNames() []string {
	names := make([]string, 0, len(r.Artifacts))
	for _, a := range r.Artifacts {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	return names
}

// Env returns the environment variables the plugins set on the sandbox
// builder, when the engine is the mock engine (else nil).
func (r *Result) Env() map[string]string {
	if b, ok := r.Builder.(*mock.SandboxBuilder); ok {
		return b.Env()
	}
	return nil
}

// DefaultTaskID is the taskId of runs whose Case sets none.
const DefaultTaskID = "fSX7BJxeTBeZ7VPAV6yvRg"

// Run drives c's plugins through one run and returns what happened. It
// fails the test (t.Fatal) only for harness problems: an unusable case, a
// run exceeding its timeout.
func Run(t testing.TB, c Case) *Result {
	t.Helper()
	tc, sink := setup(t, &c)
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	d := &driver{c: c, tc: tc, res: &Result{Context: tc, Errors: map[Stage]error{}, Durations: map[Stage]time.Duration{}, StoppedOK: true}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.run(ctx)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		<-time.After(time.Second) // let the run notice the cancellation
		t.Fatalf("plugintest: run did not end within %s", timeout)
	}
	if d.panicked != nil {
		t.Fatalf("plugintest: panic during the run: %v", d.panicked)
	}
	res := d.res
	if err := d.logFile.Close(); err != nil {
		t.Fatalf("plugintest: closing task log: %v", err)
	}
	logData, err := os.ReadFile(tc.LogPath)
	if err != nil {
		t.Fatalf("plugintest: reading task log: %v", err)
	}
	res.Log = string(logData)
	res.Artifacts = sink.Artifacts()
	return res
}

func setup(t testing.TB, c *Case) (*task.Context, *Sink) {
	t.Helper()
	var payload json.RawMessage
	switch p := c.Payload.(type) {
	case nil:
		payload = json.RawMessage(`{}`)
	case json.RawMessage:
		payload = p
	case []byte:
		payload = p
	case string:
		payload = json.RawMessage(p)
	default:
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("plugintest: marshalling payload: %v", err)
		}
		payload = b
	}
	if c.Engine == nil {
		e, err := mock.New(engines.Options{Config: json.RawMessage(`{}`)})
		if err != nil {
			t.Fatalf("plugintest: mock engine: %v", err)
		}
		c.Engine = e
	}
	if c.TaskID == "" {
		c.TaskID = DefaultTaskID
	}
	def := c.Definition
	def.Payload = payload
	now := time.Now().UTC().Truncate(time.Second)
	if def.Created.IsZero() {
		def.Created = now
	}
	if def.Deadline.IsZero() {
		def.Deadline = now.Add(time.Hour)
	}
	if def.Expires.IsZero() {
		def.Expires = now.Add(24 * time.Hour)
	}
	if def.TaskGroupID == "" {
		def.TaskGroupID = c.TaskID
	}
	dir := t.TempDir()
	taskDir := c.TaskDir
	if taskDir == "" {
		taskDir = filepath.Join(dir, "task")
		if err := os.Mkdir(taskDir, 0o755); err != nil {
			t.Fatalf("plugintest: %v", err)
		}
	}
	sink := c.Sink
	if sink == nil {
		sink = &Sink{}
		c.Sink = sink
	}
	var artifactSink task.ArtifactSink = sink
	if c.ArtifactSink != nil {
		artifactSink = c.ArtifactSink
	}
	tc := &task.Context{
		TaskID:     c.TaskID,
		RunID:      c.RunID,
		Definition: def,
		Worker:     c.Worker,
		Queue:      c.Queue,
		TaskDir:    taskDir,
		LogPath:    filepath.Join(dir, "live_backing.log"),
		Artifacts:  artifactSink,
		Started:    now,
	}
	return tc, sink
}

type driver struct {
	c       Case
	tc      *task.Context
	res     *Result
	logFile *os.File

	created  []plugins.TaskPlugin
	panicked any
}

func (d *driver) record(stage Stage, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := d.res.Errors[stage]; !ok {
		d.res.Errors[stage] = err
	}
	if d.res.Exception == nil {
		d.res.Exception = err
	}
	return err
}

// stage calls f for every created plugin in order; every plugin runs, the
// first error is recorded and returned.
func (d *driver) stage(stage Stage, f func(plugins.TaskPlugin) error) error {
	start := time.Now()
	defer func() { d.res.Durations[stage] += time.Since(start) }()
	var first error
	for _, tp := range d.created {
		if err := f(tp); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		if _, ok := d.res.Errors[stage]; !ok {
			d.res.Errors[stage] = first
		}
	}
	return first
}

func (d *driver) run(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			d.panicked = p
		}
	}()
	f, err := os.Create(d.tc.LogPath)
	if err != nil {
		d.panicked = err
		return
	}
	d.logFile = f
	d.tc.Log = task.NewLog(f)
	d.tc.Logf("plugintest: task %s run %d", d.tc.TaskID, d.tc.RunID)
	defer d.dispose(ctx)

	for i, p := range d.c.Plugins {
		tp, err := p.NewTaskPlugin(ctx, d.tc)
		if err == nil && tp == nil {
			err = fmt.Errorf("plugin %d returned no task plugin", i)
		}
		if err != nil {
			d.record(StageNewTaskPlugin, err)
			d.endException(ctx, d.c.Plugins[i:])
			return
		}
		d.created = append(d.created, tp)
	}

	builder, err := d.c.Engine.NewSandboxBuilder(ctx, d.tc)
	if err != nil {
		d.record(StageNewSandboxBuilder, err)
		d.endException(ctx, nil)
		return
	}
	d.res.Builder = builder
	if err := d.stage(StagePrepare, func(tp plugins.TaskPlugin) error { return tp.Prepare(ctx) }); err != nil {
		d.record(StagePrepare, err)
		_ = builder.Discard()
		d.endException(ctx, nil)
		return
	}
	if err := d.stage(StageBuildSandbox, func(tp plugins.TaskPlugin) error { return tp.BuildSandbox(ctx, builder) }); err != nil {
		d.record(StageBuildSandbox, err)
		_ = builder.Discard()
		d.endException(ctx, nil)
		return
	}
	sandbox, err := builder.Start(ctx)
	if err != nil {
		d.record(StageStart, err)
		d.endException(ctx, nil)
		return
	}
	defer func() { _ = sandbox.Abort() }()
	if err := d.stage(StageStarted, func(tp plugins.TaskPlugin) error { return tp.Started(ctx, sandbox) }); err != nil {
		d.record(StageStarted, err)
		_ = sandbox.Kill()
	}
	result, err := sandbox.Wait(ctx)
	if err != nil {
		d.record(StageWait, err)
		d.endException(ctx, nil)
		return
	}
	defer func() { _ = result.Dispose() }()
	d.res.TaskResult = result
	seen := result
	if d.c.WrapResult != nil {
		seen = d.c.WrapResult(result)
	}
	ok := seen.Success()
	stoppedErr := d.stage(StageStopped, func(tp plugins.TaskPlugin) error {
		pok, err := tp.Stopped(ctx, seen)
		if !pok {
			d.res.StoppedOK = false
			ok = false
		}
		return err
	})
	if stoppedErr != nil || d.res.Exception != nil {
		d.record(StageStopped, stoppedErr)
		d.endException(ctx, nil)
		return
	}
	res := task.Resolution{State: task.Completed}
	if !ok {
		res.State = task.Failed
	}
	d.res.Resolution = res
	d.tc.Logf("plugintest: exit code %d; resolution %s", result.ExitCode(), res)
	if err := d.stage(StageFinished, func(tp plugins.TaskPlugin) error { return tp.Finished(ctx, res) }); err != nil {
		d.record(StageFinished, err)
		d.res.Resolution = exceptionResolution(err)
		d.tc.Logf("plugintest: resolution changed to %s", d.res.Resolution)
		_ = d.stage(StageException, func(tp plugins.TaskPlugin) error { return tp.Exception(ctx, d.res.Resolution) })
	}
}

// endException resolves the run as the recorded exception, calls Exception
// on the created plugins and RunEndedEarly on uncreated ones that want it.
func (d *driver) endException(ctx context.Context, uncreated []plugins.Plugin) {
	res := exceptionResolution(d.res.Exception)
	d.res.Resolution = res
	d.tc.Logf("plugintest: resolution %s: %v", res, d.res.Exception)
	_ = d.stage(StageException, func(tp plugins.TaskPlugin) error { return tp.Exception(ctx, res) })
	for _, p := range uncreated {
		if h, ok := p.(plugins.UnstartedRunHandler); ok {
			if err := h.RunEndedEarly(ctx, d.tc, res); err != nil {
				if _, seen := d.res.Errors[StageRunEndedEarly]; !seen {
					d.res.Errors[StageRunEndedEarly] = err
				}
			}
		}
	}
}

func (d *driver) dispose(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for i := len(d.created) - 1; i >= 0; i-- {
		if err := d.created[i].Dispose(ctx); err != nil {
			if _, seen := d.res.Errors[StageDispose]; !seen {
				d.res.Errors[StageDispose] = err
			}
		}
	}
}

// exceptionResolution maps err to an exception resolution: the reason of a
// *task.ExceptionError, else internal-error.
func exceptionResolution(err error) task.Resolution {
	var ee *task.ExceptionError
	if errors.As(err, &ee) {
		return task.Resolution{State: task.Exception, Reason: ee.Reason}
	}
	return task.Resolution{State: task.Exception, Reason: task.ReasonInternalError}
}

// Recorded is an artifact as the Sink received it.
type Recorded struct {
	task.Artifact
	// Content is the artifact's content, unencoded, read fully through
	// Artifact.Open (file artifacts; nil when the sink discards content).
	Content []byte
	// Read is the number of content bytes read.
	Read int64
}

// Sink is an in-memory task.ArtifactSink that records what is published.
// It is safe for concurrent use.
type Sink struct {
	// Fail, when set, is called first for every Publish; a non-nil error is
	// returned without recording the artifact (e.g. a
	// task.ResourceUnavailable to test upload failures).
	Fail func(a task.Artifact) error
	// DiscardContent makes the sink read file content without keeping it
	// (benchmarks).
	DiscardContent bool

	mu        sync.Mutex
	artifacts []Recorded
}

var _ task.ArtifactSink = (*Sink)(nil)

// Publish records a, reading a file artifact's content fully.
func (s *Sink) Publish(ctx context.Context, a task.Artifact) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Fail != nil {
		if err := s.Fail(a); err != nil {
			return err
		}
	}
	rec := Recorded{Artifact: a}
	if a.Kind == task.ArtifactFile {
		if a.Open == nil {
			return fmt.Errorf("artifact %q: file artifact without Open", a.Name)
		}
		rc, err := a.Open()
		if err != nil {
			return fmt.Errorf("artifact %q: opening: %w", a.Name, err)
		}
		var w io.Writer = io.Discard
		var buf bytes.Buffer
		if !s.DiscardContent {
			w = &buf
		}
		n, err := io.Copy(w, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("artifact %q: reading: %w", a.Name, err)
		}
		rec.Read = n
		if !s.DiscardContent {
			rec.Content = buf.Bytes()
		}
	}
	rec.Open = nil
	s.mu.Lock()
	s.artifacts = append(s.artifacts, rec)
	s.mu.Unlock()
	return nil
}

// Artifacts returns the recorded artifacts in publication order.
func (s *Sink) Artifacts() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.artifacts)
}
