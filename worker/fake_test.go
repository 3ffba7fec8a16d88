package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/sandboxstate"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// fakeEngine is a minimal engine for runner tests. Payload fields:
// exit (int), output (string), block (bool: run until killed), panic
// ("builder"|"start"|"wait").
type fakeEngine struct {
	mu      sync.Mutex
	started chan struct{} // receives once per started sandbox
	// onStart, when set, is called at the start of each Start.
	onStart func(tc *task.Context)
}

type fakePayload struct {
	Exit   int    `json:"exit"`
	Output string `json:"output"`
	Block  bool   `json:"block"`
	Sleep  int    `json:"sleepMs"`
	File   string `json:"file"` // published as artifact public/file.txt by the artifact test plugin
	Panic  string `json:"panic"`
}

func newFakeEngine() *fakeEngine { return &fakeEngine{started: make(chan struct{}, 16)} }

func (e *fakeEngine) NewSandboxBuilder(ctx context.Context, tc *task.Context) (engines.SandboxBuilder, error) {
	var p fakePayload
	if err := json.Unmarshal(tc.Definition.Payload, &p); err != nil {
		return nil, task.MalformedPayloadf("payload: %v", err)
	}
	if p.Panic == "builder" {
		panic("boom in builder")
	}
	return &fakeBuilder{e: e, tc: tc, p: p, env: map[string]string{}}, nil
}

func (e *fakeEngine) Close() error { return nil }

type fakeBuilder struct {
	e   *fakeEngine
	tc  *task.Context
	p   fakePayload
	env map[string]string
}

func (b *fakeBuilder) SetEnv(name, value string) error {
	if err := engines.CheckEnv(name, value); err != nil {
		return err
	}
	if _, ok := b.env[name]; ok {
		return fmt.Errorf("%w: %s", engines.ErrEnvConflict, name)
	}
	b.env[name] = value
	return nil
}

func (b *fakeBuilder) Start(ctx context.Context) (engines.Sandbox, error) {
	if b.p.Panic == "start" {
		panic("boom in start")
	}
	if b.e.onStart != nil {
		b.e.onStart(b.tc)
	}
	s := &fakeSandbox{b: b, state: sandboxstate.New(), start: time.Now()}
	go s.run()
	b.e.started <- struct{}{}
	return s, nil
}

func (b *fakeBuilder) Discard() error { return nil }

type fakeSandbox struct {
	b     *fakeBuilder
	start time.Time
	state *sandboxstate.State
}

func (s *fakeSandbox) run() {
	_, _ = io.WriteString(s.b.tc.Log, s.b.p.Output)
	stopped := false
	if s.b.p.Sleep > 0 {
		select {
		case <-time.After(time.Duration(s.b.p.Sleep) * time.Millisecond):
		case <-s.state.Stopping():
			stopped = true
		}
	}
	if s.b.p.Block && !stopped {
		<-s.state.Stopping()
		stopped = true
	}
	exit := s.b.p.Exit
	if stopped {
		exit = -1
	}
	stop := s.state.End()
	s.state.Finish(&fakeResult{exit: exit, killed: stop == sandboxstate.Killed, d: time.Since(s.start)}, nil)
}

func (s *fakeSandbox) Wait(ctx context.Context) (engines.ResultSet, error) {
	if s.b.p.Panic == "wait" {
		panic("boom in wait")
	}
	return s.state.Wait(ctx)
}

func (s *fakeSandbox) Kill() error  { return s.state.Kill(nil) }
func (s *fakeSandbox) Abort() error { return s.state.Abort(nil) }

type fakeResult struct {
	exit   int
	killed bool
	d      time.Duration
}

func (r *fakeResult) Success() bool           { return r.exit == 0 && !r.killed }
func (r *fakeResult) ExitCode() int           { return r.exit }
func (r *fakeResult) Killed() bool            { return r.killed }
func (r *fakeResult) OOM() bool               { return false }
func (r *fakeResult) Duration() time.Duration { return r.d }
func (r *fakeResult) ExtractFile(context.Context, string) (engines.File, error) {
	return nil, engines.ErrNotFound
}
func (r *fakeResult) ExtractFolder(context.Context, string, func(string, engines.File) error) error {
	return engines.ErrNotFound
}
func (r *fakeResult) Dispose() error { return nil }

// recPlugin records the stages called and can misbehave on request.
type recPlugin struct {
	name    string
	mu      sync.Mutex
	calls   []string
	panicIn string
	failIn  string
	failErr error
	notOK   bool
	// blockIn names a stage that blocks until its context ends (Prepare)
	// or until release is closed (Stopped); entered receives when it starts.
	blockIn string
	entered chan struct{}
	release chan struct{}
}

func (p *recPlugin) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, s)
}

func (p *recPlugin) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *recPlugin) hook(stage string) error {
	p.record(stage)
	if p.panicIn == stage {
		panic("plugin " + p.name + " panics in " + stage)
	}
	if p.failIn == stage {
		return p.failErr
	}
	return nil
}

func (p *recPlugin) NewTaskPlugin(ctx context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	if err := p.hook("New"); err != nil {
		return nil, err
	}
	return &recTask{p: p}, nil
}
func (p *recPlugin) Close() error { return nil }
func (p *recPlugin) RunEndedEarly(ctx context.Context, tc *task.Context, res task.Resolution) error {
	return p.hook("Early:" + res.String())
}

type recTask struct{ p *recPlugin }

func (t *recTask) Prepare(ctx context.Context) error {
	if t.p.blockIn == "Prepare" {
		t.p.entered <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	return t.p.hook("Prepare")
}
func (t *recTask) BuildSandbox(_ context.Context, b engines.SandboxBuilder) error {
	return t.p.hook("BuildSandbox")
}
func (t *recTask) Started(context.Context, engines.Sandbox) error { return t.p.hook("Started") }
func (t *recTask) Stopped(context.Context, engines.ResultSet) (bool, error) {
	if t.p.blockIn == "Stopped" {
		t.p.entered <- struct{}{}
		<-t.p.release
	}
	err := t.p.hook("Stopped")
	return !t.p.notOK, err
}
func (t *recTask) Finished(_ context.Context, r task.Resolution) error {
	return t.p.hook("Finished:" + r.String())
}
func (t *recTask) Exception(_ context.Context, r task.Resolution) error {
	return t.p.hook("Exception:" + r.String())
}
func (t *recTask) Dispose(context.Context) error { return t.p.hook("Dispose") }
