package taskrun

import "github.com/workergen/workergen/engines"

// SetHandleSink makes the run pass its sandbox's handles to fn: whenever
// the engine reports them (engines.HandleReporter), which it does at least
// once before anything of the task runs; an engine without that ability
// gets one call with zero Handles just before its Start. So fn is always
// called before the sandbox starts (unless the run ends before it), and
// the worker, which writes each call to its run journal durably, has the
// run recorded by then: a later worker process can resolve the run and
// reap the sandbox if this one dies. Call before Runner.Run.
func (c *Control) SetHandleSink(fn func(engines.Handles)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handleSink = fn
}

func (c *Control) sink() func(engines.Handles) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handleSink
}

// reportHandlesTo registers the handle sink with b, if both are there.
func (c *Control) reportHandlesTo(b engines.SandboxBuilder) {
	if hr, ok := b.(engines.HandleReporter); ok && c.sink() != nil {
		hr.ReportHandles(c.sink())
	}
}

// beforeStart gives the handle sink its call before b starts when b
// reports no handles itself (see SetHandleSink).
func (c *Control) beforeStart(b engines.SandboxBuilder) {
	if _, ok := b.(engines.HandleReporter); !ok && c.sink() != nil {
		c.sink()(engines.Handles{})
	}
}
