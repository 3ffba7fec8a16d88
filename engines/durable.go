package engines

import (
	"context"
	"log/slog"
)

// Handles are what an engine needs to find a run's sandbox again from
// another worker process: after the worker was killed (kill -9, OOM), the
// next process of the same worker reads them from its run journal and
// passes them to the engine's Reaper. Handles are JSON-encoded into the
// journal; fields an engine does not use stay empty.
type Handles struct {
	// Cgroup is the run's cgroup v2 directory (native engine on Linux),
	// e.g. "/sys/fs/cgroup/system.slice/worker.service/workergen-<taskId>-0-<random>".
	Cgroup string `json:"cgroup,omitempty"`
	// ProcessGroups are the process group IDs of the run's commands (POSIX
	// native engine), oldest first.
	ProcessGroups []int `json:"processGroups,omitempty"`
	// BootID is the Linux boot ID (/proc/sys/kernel/random/boot_id) when
	// ProcessGroups were recorded: after a reboot they name other
	// processes and are ignored.
	BootID string `json:"bootId,omitempty"`
	// Container is the run's container ID (container engine).
	Container string `json:"container,omitempty"`
}

// LogValue makes log lines show the handles a run has, by their JSON
// names (cgroup, processGroups, bootId, container), leaving out empty
// ones.
func (h Handles) LogValue() slog.Value {
	var attrs []slog.Attr
	if h.Cgroup != "" {
		attrs = append(attrs, slog.String("cgroup", h.Cgroup))
	}
	if len(h.ProcessGroups) > 0 {
		attrs = append(attrs, slog.Any("processGroups", h.ProcessGroups))
	}
	if h.BootID != "" {
		attrs = append(attrs, slog.String("bootId", h.BootID))
	}
	if h.Container != "" {
		attrs = append(attrs, slog.String("container", h.Container))
	}
	return slog.GroupValue(attrs...)
}

// IsZero reports whether h names nothing.
func (h Handles) IsZero() bool {
	return h.Cgroup == "" && len(h.ProcessGroups) == 0 && h.Container == ""
}

// HandleReporter is an optional SandboxBuilder ability of engines whose
// sandboxes can outlive the worker process (every engine that starts host
// processes or containers). ReportHandles registers fn, which the engine
// calls synchronously with the sandbox's complete current Handles at least
// once before anything of the task runs (with zero Handles when there is
// nothing to name yet) and then each time they change: when the cgroup or
// container is created (before any task process runs in it) and when a
// command starts in a new process group. The worker writes them to its run
// journal durably before fn returns; that first call is when its record of
// the run becomes durable. Call before Start; fn is called from the
// engine's goroutines, never concurrently with itself.
//
// It is not one of the profile Abilities: no plugin requires it; the
// worker uses it when the engine has it.
type HandleReporter interface {
	ReportHandles(fn func(Handles))
}

// Reaper is the Engine-level side of HandleReporter. Reap kills everything
// of the sandbox that h describes, started by an earlier process of this
// worker that died (the whole cgroup where there is one, else every
// process group; the container), waits until it is gone and removes what
// the engine created for it (cgroup directory, container). Handles naming
// things that no longer exist are not an error, so Reap is idempotent. The
// error names what could not be removed.
type Reaper interface {
	Reap(ctx context.Context, h Handles) error
}
