package native

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// path is the cgroup's directory, recorded as engines.Handles.Cgroup.
func (c *runCgroup) path() string { return c.dir }

var bootIDOnce = sync.OnceValue(func() string {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
})

// bootID is this boot's ID (/proc/sys/kernel/random/boot_id), "" when
// unknown.
func bootID() string { return bootIDOnce() }

// procStartTime returns the start time of process pid in clock ticks
// since boot (field 22 of /proc/<pid>/stat), or "" when there is no such
// process.
func procStartTime(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19] // field 22; f[0] is field 3
}

// ownerTag names this worker process in the cgroups it creates,
// "o<pid>.<start time>", so that a later process can tell the cgroups of
// a dead worker from those of a live one (pids are reused; a pid with its
// start time is not).
var ownerTag = sync.OnceValue(func() string {
	pid := os.Getpid()
	return "o" + strconv.Itoa(pid) + "." + procStartTime(pid)
})

// ownerAlive reports whether the worker process named by a cgroup's owner
// tag still runs; ok is false when name carries no owner tag.
func ownerAlive(name string) (alive, ok bool) {
	rest, found := strings.CutPrefix(name, "workergen-o")
	if !found {
		return false, false
	}
	tag, _, found := strings.Cut(rest, "-")
	pidStr, start, found2 := strings.Cut(tag, ".")
	pid, err := strconv.Atoi(pidStr)
	if !found || !found2 || err != nil {
		return false, false
	}
	return procStartTime(pid) == start, true
}

// removeLeftoverCgroups kills and removes the run cgroups below parent
// whose worker process is gone (a worker that was killed, or crashed,
// before it could clean up). Cgroups of live workers sharing the parent
// are left alone.
func removeLeftoverCgroups(ctx context.Context, parent string, log *slog.Logger) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		log.Warn("native engine: listing leftover cgroups", "parent", parent, "error", err)
		return
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if alive, ok := ownerAlive(e.Name()); !ok || alive {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		rctx, cancel := context.WithTimeout(ctx, reapTimeout)
		err := reapCgroup(rctx, dir)
		cancel()
		if err != nil {
			log.Error("native engine: removing leftover cgroup of a dead worker", "cgroup", dir, "error", err)
			continue
		}
		log.Warn("native engine: removed leftover cgroup of a dead worker", "cgroup", dir)
	}
}

// reapTimeout bounds the wait for one leftover cgroup to empty.
const reapTimeout = 10 * time.Second

// reapCgroup kills every process in the run cgroup dir (cgroup.kill),
// waits until it is empty and removes it. A cgroup that no longer exists
// is not an error. dir must be a run cgroup ("workergen-" name on a cgroup
// v2 file system).
func reapCgroup(ctx context.Context, dir string) error {
	if !strings.HasPrefix(filepath.Base(dir), "workergen-") {
		return fmt.Errorf("refusing to reap cgroup %s: not a run cgroup (workergen-*)", dir)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil
		}
		return fmt.Errorf("reaping cgroup %s: %w", dir, err)
	}
	const cgroup2Magic = 0x63677270
	if st.Type != cgroup2Magic {
		return fmt.Errorf("refusing to reap %s: not on a cgroup v2 file system", dir)
	}
	c := &runCgroup{dir: dir}
	if err := c.kill(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for ctx.Err() == nil {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err == nil && bytes.Contains(data, []byte("populated 0")) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c.remove()
}

// groupAlive reports whether process group pg has a member that is not a
// zombie. Zombies of a dead worker wait for init to reap them; they hold
// nothing, so reaping need not wait for them.
func groupAlive(pg int) bool {
	if err := syscall.Kill(-pg, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	want := strconv.Itoa(pg)
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		// f[0] is the state (field 3), f[2] the process group (field 5).
		if len(f) > 2 && f[2] == want && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}
