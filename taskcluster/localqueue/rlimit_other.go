//go:build !unix

package localqueue

import "errors"

// openFileLimit: no RLIMIT_NOFILE here.
func openFileLimit() (uint64, error) { return 0, errors.New("no RLIMIT_NOFILE") }
