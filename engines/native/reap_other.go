//go:build !linux

package native

import (
	"context"
	"errors"
	"log/slog"
)

// bootID is unknown outside Linux: process groups are reaped on trust.
func bootID() string { return "" }

// ownerTag is empty: there are no run cgroups outside Linux.
func ownerTag() string { return "" }

func reapCgroup(context.Context, string) error {
	return errors.New("cgroups are Linux-only")
}

func removeLeftoverCgroups(context.Context, string, *slog.Logger) {}
