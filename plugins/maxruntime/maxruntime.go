// Package maxruntime is the plugin that enforces a task's `maxRunTime`
// (upstream: schemas/generic-worker/insecure_posix.json, property
// `maxRunTime`: integer seconds, minimum 1).
//
// A payload value above the worker config's maxTaskRunTime is
// malformed-payload naming `payload.maxRunTime` and the cap. A payload
// without maxRunTime (payload dialects where it is optional) runs under the
// cap; with no cap either, the task runs without a limit.
//
// The timer starts in the Started stage. When it fires the plugin kills the
// task (engines.Sandbox.Kill, which stops its whole process tree), writes
// "maxRunTime of N seconds exceeded; task killed" to the task log, and its
// Stopped stage returns ok=false so the run resolves `failed`; the other
// plugins' Stopped stages still run, so artifacts are collected. The timer is
// stopped in Stopped, Exception and Dispose, waiting for a firing callback to
// return, so nothing of a run outlives it.
package maxruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/task"
)

// Config is the plugin's worker config section; it has no fields yet (the
// cap is the worker's global maxTaskRunTime).
type Config struct{}

// Clock creates timers; tests inject a fake one.
type Clock interface {
	// AfterFunc calls f in its own goroutine after d, like time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer created by Clock.AfterFunc.
type Timer interface {
	// Stop prevents the timer from firing. It returns false if the timer
	// already fired (f has been or is being called).
	Stop() bool
}

type realClock struct{}

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

type plugin struct {
	maxTaskRunTime int // seconds; 0 means no cap
	clock          Clock
	unit           time.Duration // one "second"; tests shrink it
}

var _ plugins.Plugin = (*plugin)(nil)

// New returns the maxruntime plugin. opts.Config must be empty, null or {}.
func New(opts plugins.Options) (plugins.Plugin, error) {
	return newPlugin(opts, realClock{}, time.Second)
}

func newPlugin(opts plugins.Options, clock Clock, unit time.Duration) (*plugin, error) {
	if err := plugins.DecodeConfig(opts.Config, &Config{}); err != nil {
		return nil, fmt.Errorf("plugins.maxruntime: %w", err)
	}
	if opts.Worker.MaxTaskRunTime < 0 {
		return nil, fmt.Errorf("plugins.maxruntime: maxTaskRunTime is %d, want >= 0", opts.Worker.MaxTaskRunTime)
	}
	return &plugin{maxTaskRunTime: opts.Worker.MaxTaskRunTime, clock: clock, unit: unit}, nil
}

// Close does nothing.
func (*plugin) Close() error { return nil }

// NewTaskPlugin decodes `payload.maxRunTime` and checks it against the cap.
func (p *plugin) NewTaskPlugin(_ context.Context, tc *task.Context) (plugins.TaskPlugin, error) {
	seconds, set, err := decodeMaxRunTime(tc.Definition.Payload)
	if err != nil {
		return nil, err
	}
	if set && p.maxTaskRunTime > 0 && seconds > int64(p.maxTaskRunTime) {
		return nil, task.MalformedPayloadf("payload.maxRunTime: %d seconds exceeds this worker's maximum of %d seconds (maxTaskRunTime)", seconds, p.maxTaskRunTime)
	}
	if !set {
		seconds = int64(p.maxTaskRunTime)
	}
	return &taskPlugin{tc: tc, seconds: seconds, clock: p.clock, unit: p.unit}, nil
}

// decodeMaxRunTime returns payload.maxRunTime in seconds and whether it was
// given.
func decodeMaxRunTime(payload json.RawMessage) (int64, bool, error) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return 0, false, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return 0, false, task.MalformedPayloadf("payload: not a JSON object: %v", err)
	}
	raw, ok := fields["maxRunTime"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return 0, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, false, task.MalformedPayloadf("payload.maxRunTime: want an integer number of seconds: %v", err)
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false, task.MalformedPayloadf("payload.maxRunTime: want an integer number of seconds, got %s", bytes.TrimSpace(raw))
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || f > math.MaxInt32 {
		return 0, false, task.MalformedPayloadf("payload.maxRunTime: %s is not an integer number of seconds", n)
	}
	if f < 1 {
		return 0, false, task.MalformedPayloadf("payload.maxRunTime: %s is less than the minimum of 1 second", n)
	}
	return int64(f), true, nil
}

type taskPlugin struct {
	plugins.Base
	tc      *task.Context
	seconds int64 // 0: no limit
	clock   Clock
	unit    time.Duration

	mu      sync.Mutex
	timer   Timer
	fired   bool
	stopped bool          // stop was called
	done    chan struct{} // closed when the timer callback returned or can no longer run
}

// Started starts the maxRunTime timer.
func (p *taskPlugin) Started(_ context.Context, s engines.Sandbox) error {
	if p.seconds <= 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer != nil || p.stopped {
		return nil
	}
	p.done = make(chan struct{})
	done := p.done
	p.timer = p.clock.AfterFunc(time.Duration(p.seconds)*p.unit, func() {
		defer close(done)
		p.mu.Lock()
		p.fired = true
		p.mu.Unlock()
		if err := s.Kill(); err != nil {
			p.tc.Logf("maxRunTime of %d seconds exceeded; killing the task failed: %v", p.seconds, err)
			if p.tc.Logger != nil {
				p.tc.Logger.Error("killing task after maxRunTime", "maxRunTime", p.seconds, "error", err)
			}
			return
		}
		p.tc.Logf("maxRunTime of %d seconds exceeded; task killed", p.seconds)
		p.tc.Explain(fmt.Sprintf("maxRunTime of %d seconds exceeded", p.seconds))
	})
	return nil
}

// stop stops the timer and waits until a firing callback has returned.
func (p *taskPlugin) stop(ctx context.Context) error {
	p.mu.Lock()
	timer, done, stopped := p.timer, p.done, p.stopped
	p.stopped = true
	p.mu.Unlock()
	if timer == nil {
		return nil
	}
	if !stopped && timer.Stop() {
		// Stopped before it fired: the callback never runs.
		close(done)
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the maxRunTime timer: %w", ctx.Err())
	}
}

// Stopped stops the timer and returns ok=false if it fired.
func (p *taskPlugin) Stopped(ctx context.Context, _ engines.ResultSet) (bool, error) {
	if err := p.stop(ctx); err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.fired, nil
}

// Exception stops the timer.
func (p *taskPlugin) Exception(ctx context.Context, _ task.Resolution) error { return p.stop(ctx) }

// Dispose stops the timer.
func (p *taskPlugin) Dispose(ctx context.Context) error { return p.stop(ctx) }
