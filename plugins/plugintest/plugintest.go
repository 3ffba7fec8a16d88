// Package plugintest drives plugins through every stage of one task run
// against an engine (by default the deterministic engines/mock engine),
// with the worker's own stage runner, and records what a test needs to
// judge the outcome: each stage's error, the ok values returned by
// Stopped, the resolution the run would get, the published artifacts
// (content read fully) and the task log.
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
// Run drives the production stage runner, taskrun.Runner, with the case's
// engine and plugins (named in the task log after their package), so a
// plugin's tests go through exactly the worker's sequence: the payload
// check (against Case.PayloadSchema when set), NewTaskPlugin for every
// plugin and the engine's NewSandboxBuilder with every malformed-payload
// reason collected, Prepare, BuildSandbox, Start, Started, Wait (not
// cancellable: maxRunTime or a plugin's Kill ends the task), Stopped,
// then Finished or Exception (and RunEndedEarly for plugins never
// created), Dispose. The stage table and what each stage's error does to
// the run are described in package taskrun; Result records what the
// stages did through taskrun.Hooks.
package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/mock"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/worker/schema"
	"github.com/workergen/workergen/worker/taskrun"
)

// Stage names a step of a run, for Result.Errors: the stages of
// taskrun's table.
type Stage = taskrun.Stage

// Stages in the order a run goes through them.
const (
	StageNewTaskPlugin     = taskrun.StageNewTaskPlugin
	StageNewSandboxBuilder = taskrun.StageNewSandboxBuilder
	StagePrepare           = taskrun.StagePrepare
	StageBuildSandbox      = taskrun.StageBuildSandbox
	StageStart             = taskrun.StageStart
	StageStarted           = taskrun.StageStarted
	StageWait              = taskrun.StageWait
	StageStopped           = taskrun.StageStopped
	StageFinished          = taskrun.StageFinished
	StageException         = taskrun.StageException
	StageRunEndedEarly     = taskrun.StageRunEndedEarly
	StageDispose           = taskrun.StageDispose
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

	// PayloadSchema, when set, is a payload JSON Schema (draft 2020-12)
	// the payload is checked against first, as the worker checks it against
	// its profile's composed schema. Nil skips the schema check.
	PayloadSchema []byte

	// Timeout bounds the whole run; 0 means 2 minutes (generous: the
	// machine may be loaded). A run that times out fails the test.
	Timeout time.Duration
}

// Result is what happened during a run.
type Result struct {
	// Context is the run's task context (TaskDir, LogPath, Values...).
	Context *task.Context
	// Errors holds the first error of each stage that returned one, as the
	// engine or plugin returned it (a panic as a task.InternalError).
	Errors map[Stage]error
	// StoppedOK is the AND of every plugin's Stopped ok (true when Stopped
	// was not reached or no plugin objected).
	StoppedOK bool
	// Durations holds how long each plugin stage took (all plugins
	// together), for stages that ran; for benchmarks.
	Durations map[Stage]time.Duration
	// TaskResult is the engine's result, nil if Wait was not reached.
	TaskResult engines.ResultSet
	// Builder is the engine's sandbox builder, nil if the run ended before
	// Prepare (a refused payload; the builder was then discarded).
	Builder engines.SandboxBuilder
	// Resolution is what the run resolves to.
	Resolution task.Resolution
	// Exception is the error that made the run an exception (a
	// *task.ExceptionError: all malformed-payload reasons together, or an
	// error that is no *task.ExceptionError as internal-error), or nil.
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

// Run drives c's plugins through one run with the production stage runner
// (taskrun.Runner) and returns what happened. It fails the test (t.Fatal)
// only for harness problems: an unusable case, a run exceeding its
// timeout.
func Run(t testing.TB, c Case) *Result {
	t.Helper()
	tc, sink := setup(t, &c)
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	logFile, err := os.Create(tc.LogPath)
	if err != nil {
		t.Fatalf("plugintest: creating task log: %v", err)
	}
	tc.Log = task.NewLog(logFile)
	res := &Result{Context: tc, Errors: map[Stage]error{}, Durations: map[Stage]time.Duration{}, StoppedOK: true}
	r := newRunner(t, c, res)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctl := taskrun.NewControl()
	done := make(chan taskrun.Outcome, 1)
	go func() { done <- r.Run(ctx, tc, ctl) }()
	var out taskrun.Outcome
	select {
	case out = <-done:
	case <-ctx.Done():
		ctl.Cancel() // the task is aborted
		select {
		case <-done:
		case <-time.After(time.Second): // let the run notice the cancellation
		}
		t.Fatalf("plugintest: run did not end within %s", timeout)
	}
	res.Resolution = out.Resolution
	if out.Exception != nil {
		res.Exception = out.Exception
	}
	if err := logFile.Close(); err != nil {
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

// newRunner is the production runner for c, with hooks that record into
// res what the stages did.
func newRunner(t testing.TB, c Case, res *Result) *taskrun.Runner {
	t.Helper()
	r := &taskrun.Runner{Engine: c.Engine, Info: c.Worker, Hooks: &taskrun.Hooks{
		StageError: func(s Stage, _ string, err error) {
			if _, ok := res.Errors[s]; !ok {
				res.Errors[s] = err
			}
		},
		StageDone: func(s Stage, d time.Duration) { res.Durations[s] += d },
		Builder:   func(b engines.SandboxBuilder) { res.Builder = b },
		Result: func(rs engines.ResultSet) engines.ResultSet {
			res.TaskResult = rs
			if c.WrapResult != nil {
				return c.WrapResult(rs)
			}
			return rs
		},
		Stopped: func(_ string, ok bool) { res.StoppedOK = res.StoppedOK && ok },
	}}
	if c.PayloadSchema != nil {
		sch, err := schema.Compile("payload.schema.json", c.PayloadSchema)
		if err != nil {
			t.Fatalf("plugintest: payload schema: %v", err)
		}
		r.Payload = sch
	}
	for _, p := range c.Plugins {
		r.Plugins = append(r.Plugins, taskrun.NamedPlugin{Name: pluginName(p), Plugin: p})
	}
	return r
}

// pluginName names p in the task log by its package, e.g. "artifacts".
func pluginName(p plugins.Plugin) string {
	t := reflect.TypeOf(p)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if name := path.Base(t.PkgPath()); name != "." && name != "" {
		return name
	}
	return t.String()
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
