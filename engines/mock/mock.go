// Package mock is a deterministic in-process engine for plugin and worker
// tests. It runs no process: a task is a small script in the payload's
// `mock` object that writes to the task log, creates files in the task
// directory, sleeps or blocks until killed, and ends with an exit code. It
// can also fail or panic at a chosen stage, to test the worker's exception
// mapping and panic recovery.
//
// # Payload
//
//	{"mock": {
//	  "files":    {"out/a.txt": "content"},  // created in TaskDir first (slash paths, parents made)
//	  "symlinks": {"link": "target"},        // then these symlinks (name -> target, target kept as given)
//	  "output":   "hello\n",                 // then written to the task log as is
//	  "outputBase64": "/w==",                // then these bytes (JSON strings cannot hold invalid UTF-8)
//	  "printEnv": ["X"],                     // then, per name, the value set with SetEnv and "\n"
//	  "sleep":    "2s",                      // then wait (Go duration) or "forever": until Kill/Abort
//	  "exitCode": 0,                         // the result's exit code; non-zero fails the task
//	  "oom":      false,                     // report OOM() true
//	  "error":    {"stage": "start", "reason": "resource-unavailable", "message": "..."},
//	  "panic":    "wait"                     // panic in this stage
//	}}
//
// A task whose sleep has not ended keeps a goroutine until Kill or Abort
// (tests using "forever" must call one of them, or goleak will notice).
//
// Stages for "error" and "panic": "newSandboxBuilder", "setEnv", "start",
// "wait", "extract", "dispose". An "error" with reason "" returns a plain
// error (internal-error); any other reason returns a *task.ExceptionError
// with that reason. A payload without `mock` runs an empty successful task.
//
// # Inspection
//
// SandboxBuilder.Env, Sandbox.Env and ResultSet.Env return the variables
// set with SetEnv; Engine.Runs lists every builder the engine made, so a
// test can find the env a plugin contributed. Files are read back with the
// same rules as the native engine (engines/internal/hostdir).
//
// Config: `{}` (any object; no keys are used).
package mock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/internal/hostdir"
	"github.com/workergen/workergen/engines/sandboxstate"
	"github.com/workergen/workergen/task"
)

// Stages that "error" and "panic" name.
const (
	StageNewSandboxBuilder = "newSandboxBuilder"
	StageSetEnv            = "setEnv"
	StageStart             = "start"
	StageWait              = "wait"
	StageExtract           = "extract"
	StageDispose           = "dispose"
)

var stages = []string{StageNewSandboxBuilder, StageSetEnv, StageStart, StageWait, StageExtract, StageDispose}

// Payload is the payload object the mock engine reads.
type Payload struct {
	Mock *Script `json:"mock,omitempty"`
}

// Script is the `mock` payload object; see the package documentation.
type Script struct {
	Files    map[string]string `json:"files,omitempty"`
	Symlinks map[string]string `json:"symlinks,omitempty"`
	Output   string            `json:"output,omitempty"`
	// OutputBase64 is written after Output; encoding/json encodes []byte as
	// base64, which lets tests send bytes that are not valid UTF-8.
	OutputBase64 []byte     `json:"outputBase64,omitempty"`
	PrintEnv     []string   `json:"printEnv,omitempty"`
	Sleep        string     `json:"sleep,omitempty"`
	ExitCode     int        `json:"exitCode,omitempty"`
	OOM          bool       `json:"oom,omitempty"`
	Error        *ErrorSpec `json:"error,omitempty"`
	Panic        string     `json:"panic,omitempty"`

	sleep   time.Duration
	forever bool
}

// ErrorSpec makes a stage fail.
type ErrorSpec struct {
	Stage   string `json:"stage"`
	Reason  string `json:"reason,omitempty"` // task.Reason, "" for a plain error
	Message string `json:"message,omitempty"`
}

// ErrInjected is wrapped by every error the "error" payload field causes.
var ErrInjected = errors.New("mock: injected error")

// Engine is the mock engine.
type Engine struct {
	mu   sync.Mutex
	runs []*SandboxBuilder
}

var _ engines.Engine = (*Engine)(nil)

// New returns a mock engine. opts.Config must be empty or a JSON object.
func New(opts engines.Options) (engines.Engine, error) {
	if len(opts.Config) > 0 {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(opts.Config, &cfg); err != nil {
			return nil, fmt.Errorf("decoding mock engine config: %w", err)
		}
	}
	return &Engine{}, nil
}

// Runs returns every builder made so far, oldest first.
func (e *Engine) Runs() []*SandboxBuilder {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*SandboxBuilder(nil), e.runs...)
}

// Close does nothing.
func (e *Engine) Close() error { return nil }

// NewSandboxBuilder decodes the `mock` payload field.
func (e *Engine) NewSandboxBuilder(ctx context.Context, tc *task.Context) (engines.SandboxBuilder, error) {
	var p Payload
	if len(tc.Definition.Payload) > 0 {
		if err := json.Unmarshal(tc.Definition.Payload, &p); err != nil {
			return nil, task.MalformedPayloadf("payload.mock: %v", err)
		}
	}
	s := p.Mock
	if s == nil {
		s = &Script{}
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := s.fail(StageNewSandboxBuilder); err != nil {
		return nil, err
	}
	b := &SandboxBuilder{tc: tc, script: s, env: map[string]string{}}
	e.mu.Lock()
	e.runs = append(e.runs, b)
	e.mu.Unlock()
	return b, nil
}

func (s *Script) check() error {
	switch s.Sleep {
	case "":
	case "forever":
		s.forever = true
	default:
		d, err := time.ParseDuration(s.Sleep)
		if err != nil || d < 0 {
			return task.MalformedPayloadf("payload.mock.sleep: %q is not a duration or \"forever\"", s.Sleep)
		}
		s.sleep = d
	}
	for _, st := range []struct{ field, v string }{{"panic", s.Panic}, {"error.stage", errStage(s.Error)}} {
		if st.v != "" && !slices.Contains(stages, st.v) {
			return task.MalformedPayloadf("payload.mock.%s: unknown stage %q (one of %s)", st.field, st.v, strings.Join(stages, ", "))
		}
	}
	for name := range s.Files {
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return task.MalformedPayloadf("payload.mock.files: %q is not a local relative path", name)
		}
	}
	for name := range s.Symlinks {
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return task.MalformedPayloadf("payload.mock.symlinks: %q is not a local relative path", name)
		}
	}
	return nil
}

func errStage(e *ErrorSpec) string {
	if e == nil {
		return ""
	}
	return e.Stage
}

// fail panics or returns the injected error for stage.
func (s *Script) fail(stage string) error {
	if s.Panic == stage {
		panic("mock: panic requested in stage " + stage)
	}
	if s.Error == nil || s.Error.Stage != stage {
		return nil
	}
	err := fmt.Errorf("%w in stage %s: %s", ErrInjected, stage, s.Error.Message)
	if s.Error.Reason == "" {
		return err
	}
	return &task.ExceptionError{Reason: task.Reason(s.Error.Reason), Reasons: []string{s.Error.Message}, Err: err}
}

// SandboxBuilder collects env vars for a mock run.
type SandboxBuilder struct {
	tc     *task.Context
	script *Script

	mu      sync.Mutex
	env     map[string]string
	started bool
	sandbox *Sandbox
}

var _ engines.SandboxBuilder = (*SandboxBuilder)(nil)

// SetEnv records name=value. Names follow the contract's minimum rules
// (non-empty, no '=' or NUL); values may not hold NUL.
func (b *SandboxBuilder) SetEnv(name, value string) error {
	if err := b.script.fail(StageSetEnv); err != nil {
		return err
	}
	if err := engines.CheckEnv(name, value); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return fmt.Errorf("setting %s: sandbox already started", name)
	}
	if _, ok := b.env[name]; ok {
		return fmt.Errorf("%s: %w", name, engines.ErrEnvConflict)
	}
	b.env[name] = value
	return nil
}

// Env returns a copy of the variables set so far.
func (b *SandboxBuilder) Env() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.env)
}

// Sandbox returns the sandbox Start made, or nil.
func (b *SandboxBuilder) Sandbox() *Sandbox {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sandbox
}

// Discard does nothing.
func (b *SandboxBuilder) Discard() error { return nil }

// Start runs the script in a goroutine.
func (b *SandboxBuilder) Start(ctx context.Context) (engines.Sandbox, error) {
	if err := b.script.fail(StageStart); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return nil, errors.New("mock: sandbox already started")
	}
	b.started = true
	s := &Sandbox{
		tc:     b.tc,
		script: b.script,
		env:    maps.Clone(b.env),
		state:  sandboxstate.New(),
		start:  time.Now(),
	}
	b.sandbox = s
	go s.run()
	return s, nil
}

// Sandbox is a running mock task.
type Sandbox struct {
	tc     *task.Context
	script *Script
	env    map[string]string
	start  time.Time
	state  *sandboxstate.State
}

var _ engines.Sandbox = (*Sandbox)(nil)

// Env returns the variables the task got.
func (s *Sandbox) Env() map[string]string { return maps.Clone(s.env) }

func (s *Sandbox) run() {
	dir := hostdir.Dir{Path: s.tc.TaskDir, Roots: &hostdir.Roots{}, Skipped: func(rel string, why error) {
		s.tc.Logf("skipping %s: %v", rel, why)
	}}
	res := &ResultSet{dir: dir, script: s.script, env: s.env, exitCode: s.script.ExitCode}
	err := s.steps()
	if err != nil {
		s.tc.Logf("mock engine: %v", err)
		res.exitCode = 1
	}
	stopping := s.state.Stopping()
	select {
	case <-stopping:
	default:
		if s.script.forever {
			<-stopping
		} else if s.script.sleep > 0 {
			t := time.NewTimer(s.script.sleep)
			select {
			case <-t.C:
			case <-stopping:
			}
			t.Stop()
		}
	}
	res.duration = time.Since(s.start)
	if stop := s.state.End(); stop != sandboxstate.None {
		res.killed, res.exitCode = stop == sandboxstate.Killed, -1
	}
	s.state.Finish(res, nil)
}

func (s *Sandbox) steps() error {
	dir := s.tc.TaskDir
	for _, name := range sortedKeys(s.script.Files) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		if err := os.WriteFile(p, []byte(s.script.Files[name]), 0o644); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
	}
	for _, name := range sortedKeys(s.script.Symlinks) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		if err := os.Symlink(s.script.Symlinks[name], p); err != nil {
			return fmt.Errorf("creating symlink %s: %w", name, err)
		}
	}
	if s.script.Output != "" {
		if _, err := s.tc.Log.Write([]byte(s.script.Output)); err != nil {
			return err
		}
	}
	if len(s.script.OutputBase64) > 0 {
		if _, err := s.tc.Log.Write(s.script.OutputBase64); err != nil {
			return err
		}
	}
	for _, name := range s.script.PrintEnv {
		if _, err := s.tc.Log.Write([]byte(s.env[name] + "\n")); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m)) // deterministic; parents before children
}

// Wait waits for the script to end.
func (s *Sandbox) Wait(ctx context.Context) (engines.ResultSet, error) {
	if err := s.script.fail(StageWait); err != nil {
		return nil, err
	}
	return s.state.Wait(ctx)
}

// Kill ends a sleeping script; its result reports Killed. Only a running
// task can be killed; once it has ended Kill is a no-op and its result
// stands. Kill returns when the script has ended.
func (s *Sandbox) Kill() error {
	_ = s.state.Kill(nil)
	<-s.state.Done()
	return nil
}

// Abort ends the script and discards its result (a no-op once the task
// has ended). Abort returns when the script has ended.
func (s *Sandbox) Abort() error {
	_ = s.state.Abort(nil)
	<-s.state.Done()
	return nil
}

// ResultSet is a finished mock task.
type ResultSet struct {
	dir      hostdir.Dir
	script   *Script
	env      map[string]string
	exitCode int
	killed   bool
	duration time.Duration
}

var _ engines.ResultSet = (*ResultSet)(nil)

// Env returns the variables the task got.
func (r *ResultSet) Env() map[string]string { return maps.Clone(r.env) }

// Success reports exit code 0 and not killed.
func (r *ResultSet) Success() bool { return r.exitCode == 0 && !r.killed }

// ExitCode is the payload's exitCode, or -1 when killed.
func (r *ResultSet) ExitCode() int { return r.exitCode }

// Killed reports whether Kill ended the task.
func (r *ResultSet) Killed() bool { return r.killed }

// OOM is the payload's oom.
func (r *ResultSet) OOM() bool { return r.script.OOM }

// Duration is the time the script ran.
func (r *ResultSet) Duration() time.Duration { return r.duration }

// ExtractFile reads a file of the task directory (see hostdir).
func (r *ResultSet) ExtractFile(ctx context.Context, path string) (engines.File, error) {
	if err := r.script.fail(StageExtract); err != nil {
		return nil, err
	}
	return r.dir.ExtractFile(ctx, path)
}

// ExtractFolder walks a folder of the task directory (see hostdir).
func (r *ResultSet) ExtractFolder(ctx context.Context, path string, fn func(string, engines.File) error) error {
	if err := r.script.fail(StageExtract); err != nil {
		return err
	}
	return r.dir.ExtractFolder(ctx, path, fn)
}

// Dispose closes the handles extraction kept open; the worker owns the
// task directory.
func (r *ResultSet) Dispose() error {
	if err := r.script.fail(StageDispose); err != nil {
		return err
	}
	return r.dir.Roots.Close()
}
