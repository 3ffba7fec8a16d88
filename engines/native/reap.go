package native

import (
	"context"
	"errors"

	"github.com/workergen/workergen/engines"
)

var (
	_ engines.Reaper         = (*Engine)(nil)
	_ engines.HandleReporter = (*builder)(nil)
)

// ReportHandles registers fn for the sandbox's handles: the run's cgroup as
// soon as it exists (before any command starts in it) and the process
// group of every command as it starts (see engines.HandleReporter).
func (b *builder) ReportHandles(fn func(engines.Handles)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.report = fn
}

// handles returns the sandbox's current handles. Called with the state
// locked, or before run started.
func (s *sandbox) handles() engines.Handles {
	var h engines.Handles
	if d, ok := s.cont.(interface{ path() string }); ok {
		h.Cgroup = d.path()
	}
	for _, p := range s.procs {
		if pg := p.group(); pg > 0 {
			h.ProcessGroups = append(h.ProcessGroups, pg)
			h.BootID = bootID()
		}
	}
	return h
}

// reportHandles passes h to the function registered with ReportHandles,
// if any. Never called with the state locked.
func (s *sandbox) reportHandles(h engines.Handles) {
	if s.report != nil && !h.IsZero() {
		s.report(h)
	}
}

// Reap kills every process of a sandbox an earlier worker process started
// (its whole cgroup when it had one, else its process groups, on the same
// boot only) and removes its cgroup. See engines.Reaper.
func (e *Engine) Reap(ctx context.Context, h engines.Handles) error {
	var errs []error
	if h.Cgroup != "" {
		errs = append(errs, reapCgroup(ctx, h.Cgroup))
	}
	if len(h.ProcessGroups) > 0 && (h.BootID == "" || h.BootID == bootID()) {
		for _, pg := range h.ProcessGroups {
			errs = append(errs, reapProcessGroup(ctx, pg))
		}
	}
	return errors.Join(errs...)
}
