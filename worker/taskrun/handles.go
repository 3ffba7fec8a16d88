package taskrun

import "github.com/workergen/workergen/engines"

// SetHandleSink makes the run pass its sandbox's handles to fn whenever the
// engine reports them (engines.HandleReporter; engines without that
// ability never call fn). The worker writes them to its run journal, so a
// later worker process can reap the sandbox if this one dies. Call before
// Runner.Run.
func (c *Control) SetHandleSink(fn func(engines.Handles)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handleSink = fn
}

// reportHandlesTo registers the handle sink with b, if both are there.
func (c *Control) reportHandlesTo(b engines.SandboxBuilder) {
	c.mu.Lock()
	fn := c.handleSink
	c.mu.Unlock()
	if hr, ok := b.(engines.HandleReporter); ok && fn != nil {
		hr.ReportHandles(fn)
	}
}
