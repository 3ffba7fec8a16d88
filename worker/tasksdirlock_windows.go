package worker

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// tryLock locks f exclusively with LockFileEx without waiting; errLocked
// when another open file holds the lock. The lock covers a byte far past
// the pid the file holds, so that others can still read the pid.
func tryLock(f *os.File) error {
	ol := &windows.Overlapped{Offset: 0, OffsetHigh: 1}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLocked
	}
	return err
}
