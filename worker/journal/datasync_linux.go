package journal

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data to disk with fdatasync(2): unlike fsync it
// skips the inode's timestamps, so a write in place that changes neither
// the file's size nor its blocks costs a data flush only.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if !errors.Is(serr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
