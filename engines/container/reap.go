package container

import (
	"context"

	"github.com/workergen/workergen/engines"
)

var (
	_ engines.Reaper         = (*Engine)(nil)
	_ engines.HandleReporter = (*builder)(nil)
)

// ReportHandles registers fn for the sandbox's container ID, reported once
// the container is created and before it starts (see
// engines.HandleReporter).
func (b *builder) ReportHandles(fn func(engines.Handles)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.report = fn
}

// reportFn returns the function ReportHandles registered, or nil.
func (b *builder) reportFn() func(engines.Handles) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.report
}

// Reap kills and removes the container an earlier worker process started
// for a run (with its anonymous volumes). A container that is already gone
// (removed as a leftover when the engine started) is not an error. See
// engines.Reaper.
func (e *Engine) Reap(ctx context.Context, h engines.Handles) error {
	if h.Container == "" {
		return nil
	}
	return e.removeContainer(ctx, h.Container)
}
