//go:build !linux

package container

import "errors"

// daemonMissingCaps is unknown off Linux.
func daemonMissingCaps(string) ([]string, error) {
	return nil, errors.New("daemon capabilities are read on Linux only")
}
