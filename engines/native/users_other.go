//go:build unix && !linux && !darwin

package native

import (
	"errors"
	"log/slog"
)

func newUserAccounts(*slog.Logger) (userAccounts, error) {
	return nil, errors.New("multiuser mode is not built for this operating system (Linux, macOS and Windows only)")
}
