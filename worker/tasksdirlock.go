package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileName is the file in the run journal's directory that a working
// worker process holds locked (lockTasksDir).
const lockFileName = "lock"

// errLocked is what tryLock returns when another open file holds the
// lock.
var errLocked = errors.New("locked")

// lockTasksDir makes this process the only worker using cfg.TasksDir
// until release: it takes an exclusive lock on
// <tasksDir>/.journal/lock (flock on Unix, LockFileEx on Windows), which
// the kernel drops when the process ends, however it ends, and writes the
// process's pid into it. A second worker given the same tasksDir would
// take the first one's journal records for a crash's leftovers, kill its
// running tasks and resolve them; it fails instead, with an error that
// names the directory and the process holding it (wrapping ErrConfig).
func lockTasksDir(tasksDir string) (release func(), err error) {
	dir := filepath.Join(tasksDir, journalDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tasksDir: %w", err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // close-on-exec: no task inherits it
	if err != nil {
		return nil, fmt.Errorf("tasksDir: %w", err)
	}
	if err := tryLock(f); err != nil {
		_ = f.Close()
		if !errors.Is(err, errLocked) {
			return nil, fmt.Errorf("tasksDir: locking %s: %w", path, err)
		}
		holder := "another worker process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = "worker process " + strconv.Itoa(pid)
			}
		}
		return nil, fmt.Errorf("%w: tasksDir %s is in use by %s (it holds %s): two workers cannot share a tasksDir, since each would take the other's runs for a crash's leftovers; give each worker its own tasksDir (and stateDir)",
			ErrConfig, tasksDir, holder, path)
	}
	if err := writePID(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("tasksDir: %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}

// writePID replaces f's content by this process's pid.
func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}
