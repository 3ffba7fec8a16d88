package native

import (
	"context"
	"errors"
	"slices"

	"github.com/workergen/workergen/engines"
)

var (
	_ engines.Reaper         = (*Engine)(nil)
	_ engines.HandleReporter = (*builder)(nil)
)

// ReportHandles registers fn for the sandbox's handles: the run's cgroup as
// soon as it exists (before any command starts in it), or, without a
// cgroup, zero Handles before the first command and then the process group
// of every command as it starts (see engines.HandleReporter). A run with a
// cgroup reports it once: every process of the run starts inside it
// (CLONE_INTO_CGROUP) and Reap kills the whole cgroup, so its process
// groups would tell recovery nothing more, and each report costs the
// worker a durable journal write on the way to the task's start.
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
		return h // it holds every process of the run; see ReportHandles
	}
	for _, p := range s.procs {
		if pg := p.group(); pg > 0 {
			h.ProcessGroups = append(h.ProcessGroups, pg)
			h.BootID = bootID()
		}
	}
	return h
}

// reportStart makes the first report, before any command starts: the
// cgroup, or zero Handles without one (see engines.HandleReporter).
func (s *sandbox) reportStart() {
	if s.report != nil {
		h := s.handles()
		s.report(h)
		s.reported = h
	}
}

// reportHandles passes h to the function registered with ReportHandles,
// if any. Never called with the state locked.
func (s *sandbox) reportHandles(h engines.Handles) {
	if s.report != nil && !h.IsZero() && !sameHandles(h, s.reported) {
		s.report(h)
		s.reported = h
	}
}

// sameHandles reports whether a and b name the same things.
func sameHandles(a, b engines.Handles) bool {
	return a.Cgroup == b.Cgroup && a.BootID == b.BootID && a.Container == b.Container &&
		slices.Equal(a.ProcessGroups, b.ProcessGroups)
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
