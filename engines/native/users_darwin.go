package native

import (
	"errors"
	"log/slog"
	"os"
)

func newUserAccounts(*slog.Logger) (userAccounts, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("multiuser mode needs the worker to run as root (it creates a user per task)")
	}
	return &dsclAccounts{run: execRun}, nil
}
