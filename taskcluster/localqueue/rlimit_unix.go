//go:build unix

package localqueue

import "syscall"

// openFileLimit is the soft RLIMIT_NOFILE.
func openFileLimit() (uint64, error) {
	var l syscall.Rlimit
	err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur, err
}
