//go:build unix && !linux

package native

import (
	"errors"
	"syscall"
)

// groupAlive reports whether process group pg still has members.
func groupAlive(pg int) bool {
	return !errors.Is(syscall.Kill(-pg, 0), syscall.ESRCH)
}
