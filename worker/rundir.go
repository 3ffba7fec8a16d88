package worker

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// A run's directory is <tasksDir>/<taskId>-<runId> (Worker.runDir), mode
// 0711, holding the task directory task/ (mode 0755 less the umask) and
// the task log live_backing.log (0600). Creating and deleting these three
// inodes for every run is, on ext4, the most expensive thing a trivial
// task does: the inode allocator scans past recently deleted inodes.
//
// So on Linux the clean-up of a run turns its directory into a spare,
// <tasksDir>/.spare-<n>, and the next run renames a spare into place
// instead of creating directories (rename allocates no inode). The
// clean-up removes everything the task and the worker left and keeps a
// piece only when it is indistinguishable from a fresh one — the same
// owner, group, mode, extended attributes (ACLs included), inode flags and
// no larger directory size than the directories of the worker's first
// fresh run, measured right after they were made — and otherwise removes
// that piece so the next run creates it afresh:
//
//   - task/ is kept only when the engine guarantees that no process of a
//     run outlives it (containers; the native engine with cgroups), so no
//     leftover process can write into the next run's directory, and only
//     when its owner did not change: the multiuser engine hands task/ to
//     a new user each run, so there it is always made afresh.
//   - live_backing.log is kept only when no one else has it open: the
//     clean-up takes a write lease on it (fcntl F_SETLEASE), which the
//     kernel grants only when no other open file description of it
//     exists anywhere, then truncates it. The spare holds the lease until
//     a run takes it; any open of the file in between breaks the lease,
//     and the run then creates a fresh log. So a live log reader still
//     connected, or a process still holding the file, never sees the next
//     run's log. (Opens by path after the clean-up fail: the path is
//     gone. The live log server, plugins/tasklog, serves a file only if it
//     opened it before the run's stream ended, so an open racing the end
//     of the run cannot reach the reused file either.)
//
// Spares are at most twice the worker's capacity (a run may start before
// the clean-up of the run that ended just before it is done; it then
// takes an older spare), are removed when Work returns, and a start-up
// removes the ones a crashed worker left (they hold nothing of a task: the
// run's files were removed before the rename). Elsewhere than on Linux
// every run gets fresh directories.

const (
	taskDirName    = "task"
	logFileName    = "live_backing.log"
	spareDirPrefix = ".spare-"
)

// spare is an emptied run directory waiting for the next run.
type spare struct {
	path string
	task bool     // holds an empty task/ like a fresh one
	log  *os.File // the emptied log, under a write lease; nil when none
}

// sparePool holds up to max spare run directories in dir (cfg.TasksDir).
// A nil *sparePool keeps none: every run gets fresh directories.
type sparePool struct {
	dir string
	max int
	// reuseTask is whether task/ may be kept (see the comment above).
	reuseTask bool
	log       *slog.Logger

	freshOnce sync.Once
	fresh     atomic.Pointer[freshState] // what fresh directories look like; nil until seen (Linux)

	mu     sync.Mutex
	free   []*spare
	closed bool
	seq    int
}

// newSparePool removes the spares a crashed worker left in dir and returns
// an empty pool of at most max spares.
func newSparePool(dir string, max int, reuseTask bool, log *slog.Logger) *sparePool {
	p := &sparePool{dir: dir, max: max, reuseTask: reuseTask, log: log}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Error("listing spare run directories", "dir", dir, "error", err)
	}
	for _, e := range entries {
		if !isSpareName(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := removeTree(path); err != nil {
			log.Error("removing a spare run directory left by an earlier worker", "dir", path, "error", err)
			continue
		}
		log.Info("removed a spare run directory left by an earlier worker", "dir", path)
	}
	return p
}

// runsLeaveNoProcess reports whether the engine guarantees that no process
// of a run outlives it, so that a task directory can be reused: the native
// engine does when it runs tasks in cgroups of their own (UsesCgroups);
// engines without that method (containers) always do.
func (w *Worker) runsLeaveNoProcess() bool {
	if c, ok := w.Runner.Engine.(interface{ UsesCgroups() bool }); ok {
		return c.UsesCgroups()
	}
	return true
}

// isSpareName reports whether name is a spare's name: ".spare-" and a
// decimal number.
func isSpareName(name string) bool {
	n, ok := strings.CutPrefix(name, spareDirPrefix)
	if !ok || n == "" {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 32)
	return err == nil
}

// makeRunDir makes runDir with task/ and the log, from a spare when there
// is one, and returns the log open for writing, empty. Errors name what
// could not be made.
func (p *sparePool) makeRunDir(runDir string) (*os.File, error) {
	if sp := p.get(); sp != nil {
		lf, err := p.take(sp, runDir)
		if err == nil {
			return lf, nil
		}
		p.log.Warn("could not reuse a spare run directory; making a fresh one", "dir", runDir, "error", err)
	}
	lf, err := makeFreshRunDir(runDir)
	if err == nil && p != nil {
		p.freshOnce.Do(func() { p.fresh.Store(captureFresh(runDir, lf, p.log)) })
	}
	return lf, err
}

// makeFreshRunDir makes runDir (0711), runDir/task (0755 less the umask)
// and runDir/live_backing.log (0600, empty, open read-write). A runDir
// left over from an earlier worker process is removed first.
func makeFreshRunDir(runDir string) (*os.File, error) {
	taskDir := filepath.Join(runDir, taskDirName)
	if err := os.Mkdir(runDir, 0o755); errors.Is(err, fs.ErrExist) {
		// Left over from an earlier worker process: start afresh.
		if err := removeTree(runDir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(taskDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating task directory: %w", err)
	}
	// The run directory can be crossed but not listed (a multiuser task
	// user reaches its task directory through it), and the worker's files
	// in it (log, artifact uploads) are private.
	if err := os.Chmod(runDir, 0o711); err != nil {
		return nil, fmt.Errorf("creating task directory: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(runDir, logFileName), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating task log: %w", err)
	}
	return lf, nil
}

// release ends a run's directory after its clean-up: kept as a spare when
// reuse is true (the run is over and resolved) and the pool has room and
// the directory can be made like a fresh one, else removed.
func (p *sparePool) release(runDir string, reuse bool, log *slog.Logger) {
	if p != nil && reuse && p.wants() {
		sp, err := p.recycle(runDir)
		if err == nil {
			// Read before put: once in the pool, sp belongs to the run
			// that takes it (take clears sp.log).
			path, task, hasLog := sp.path, sp.task, sp.log != nil
			if p.put(sp) {
				log.Debug("run directory kept for the next run", "spare", path, "taskDir", task, "log", hasLog)
			}
			return
		}
		log.Debug("run directory not reused", "reason", err)
	}
	if err := removeTree(runDir); err != nil {
		log.Warn("could not remove the run directory; the next start of the worker tries again", "dir", runDir, "error", err)
	}
}

// wants reports whether a spare would be kept now.
func (p *sparePool) wants() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && len(p.free) < p.max && p.fresh.Load() != nil
}

// get takes a spare out of the pool; nil when there is none.
func (p *sparePool) get() *spare {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.free)
	if n == 0 {
		return nil
	}
	sp := p.free[n-1]
	p.free = p.free[:n-1]
	return sp
}

// put keeps sp, or discards it when the pool is full or closed; it
// reports whether sp was kept.
func (p *sparePool) put(sp *spare) bool {
	p.mu.Lock()
	keep := !p.closed && len(p.free) < p.max
	if keep {
		p.free = append(p.free, sp)
	}
	p.mu.Unlock()
	if !keep {
		p.discard(sp)
	}
	return keep
}

// nextPath names a new spare.
func (p *sparePool) nextPath() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	return filepath.Join(p.dir, spareDirPrefix+strconv.Itoa(p.seq))
}

// closeLog drops the spare's log (and its lease).
func (sp *spare) closeLog() {
	if sp.log != nil {
		_ = sp.log.Close()
		sp.log = nil
	}
}

// discard removes a spare.
func (p *sparePool) discard(sp *spare) {
	sp.closeLog()
	if err := removeTree(sp.path); err != nil {
		p.log.Warn("could not remove a spare run directory", "dir", sp.path, "error", err)
	}
}

// close removes every spare; spares released later are removed at once.
func (p *sparePool) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, sp := range free {
		p.discard(sp)
	}
}
