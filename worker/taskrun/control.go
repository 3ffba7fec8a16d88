package taskrun

import (
	"context"
	"sync"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

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
	handleSink  func(engines.Handles) // SetHandleSink
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

// Cancelled reports whether Cancel was called: the run is the Queue's
// again and its outcome is not to be reported.
func (c *Control) Cancelled() bool { return c.stopped() == stopCancel }

func stopException(m stopMode) *task.ExceptionError {
	if m == stopCancel {
		return &task.ExceptionError{Reason: task.ReasonCanceled, Reasons: []string{"run cancelled by the Queue; stopping without reporting"}}
	}
	return &task.ExceptionError{Reason: task.ReasonWorkerShutdown, Reasons: []string{"worker is shutting down; task stopped"}}
}
