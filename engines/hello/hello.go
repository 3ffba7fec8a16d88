// Package hello is the simplest workergen engine: its payload is
// `{"name": "<string>"}` and running a task writes "Hello, <name>" to the
// task log. It runs no process and produces no files. It exists so that the
// whole build (profile -> generator -> binary -> run) can be exercised with
// no sandboxing, and as the smallest example of the engine contract.
//
// Payload dialect: "hello" (hello.cue in this folder). Config: `{}`.
package hello

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/sandboxstate"
	"github.com/workergen/workergen/task"
)

// Payload is the hello dialect's task payload.
type Payload struct {
	// Name is who to greet.
	Name string `json:"name"`
}

// Engine is the hello engine. It is safe for concurrent use.
type Engine struct{}

var (
	_ engines.Engine         = (*Engine)(nil)
	_ engines.SandboxBuilder = (*builder)(nil)
	_ engines.Sandbox        = (*sandbox)(nil)
	_ engines.ResultSet      = (*result)(nil)
)

// New returns a hello engine. Its config must be absent, null or `{}`;
// anything else is an error naming the unknown field.
func New(opts engines.Options) (engines.Engine, error) {
	if len(bytes.TrimSpace(opts.Config)) > 0 && !bytes.Equal(bytes.TrimSpace(opts.Config), []byte("null")) {
		var cfg struct{}
		dec := json.NewDecoder(bytes.NewReader(opts.Config))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("hello engine: decoding config: %w", err)
		}
	}
	return &Engine{}, nil
}

// NewSandboxBuilder decodes the payload. A payload without a name (or not
// an object) is malformed-payload naming `payload.name`.
func (e *Engine) NewSandboxBuilder(_ context.Context, tc *task.Context) (engines.SandboxBuilder, error) {
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(tc.Definition.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, task.MalformedPayloadf("payload: %v", err)
	}
	if p.Name == "" {
		return nil, task.MalformedPayload("payload.name: must be a non-empty string")
	}
	return &builder{tc: tc, name: p.Name, env: map[string]string{}}, nil
}

// Close does nothing: the engine holds no resources.
func (e *Engine) Close() error { return nil }

type builder struct {
	tc   *task.Context
	name string

	mu      sync.Mutex
	env     map[string]string
	started bool
}

// SetEnv records the variable (the hello engine runs no process, so it is
// not used) after checking it like any engine would.
func (b *builder) SetEnv(name, value string) error {
	if err := engines.CheckEnv(name, value); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.env[name]; ok {
		return fmt.Errorf("setting %q: %w", name, engines.ErrEnvConflict)
	}
	b.env[name] = value
	return nil
}

// Start writes the greeting to the task log; the task has ended when Start
// returns.
func (b *builder) Start(ctx context.Context) (engines.Sandbox, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return nil, errors.New("hello engine: sandbox already started")
	}
	b.started = true
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("hello engine: starting: %w", err)
	}
	start := time.Now()
	if b.tc.Log != nil {
		if _, err := fmt.Fprintf(b.tc.Log, "Hello, %s\n", b.name); err != nil {
			return nil, task.InternalError(fmt.Errorf("hello engine: writing task log: %w", err))
		}
	}
	return &sandbox{res: &result{duration: time.Since(start)}, state: sandboxstate.New()}, nil
}

// Discard does nothing.
func (b *builder) Discard() error { return nil }

// sandbox holds the result of a task that ended in Start until Wait
// returns it: an Abort before that discards it.
type sandbox struct {
	res   *result
	state *sandboxstate.State
}

// Wait returns the result at once (the task ended in Start), or
// engines.ErrAborted if Abort came first.
func (s *sandbox) Wait(ctx context.Context) (engines.ResultSet, error) {
	s.state.Finish(s.res, nil)
	return s.state.Wait(context.WithoutCancel(ctx)) // done already: ctx cannot matter
}

// Kill is a no-op: the task has already ended.
func (s *sandbox) Kill() error { return nil }

// Abort discards the result, unless Wait has returned it already.
func (s *sandbox) Abort() error { return s.state.Abort(nil) }

type result struct {
	duration time.Duration
}

func (r *result) Success() bool           { return true }
func (r *result) ExitCode() int           { return 0 }
func (r *result) Killed() bool            { return false }
func (r *result) OOM() bool               { return false }
func (r *result) Duration() time.Duration { return r.duration }

// ExtractFile always fails with ErrNotFound: the hello engine makes no files.
func (r *result) ExtractFile(_ context.Context, path string) (engines.File, error) {
	return nil, fmt.Errorf("hello engine: %q: %w", path, engines.ErrNotFound)
}

// ExtractFolder always fails with ErrNotFound.
func (r *result) ExtractFolder(_ context.Context, path string, _ func(string, engines.File) error) error {
	return fmt.Errorf("hello engine: %q: %w", path, engines.ErrNotFound)
}

// Dispose does nothing.
func (r *result) Dispose() error { return nil }
