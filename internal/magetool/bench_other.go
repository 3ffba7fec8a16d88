//go:build !linux

package main

import (
	"context"
	"errors"
)

// benchCmd: the benchmark (bench/) reads /proc.
func benchCmd(context.Context, []string) error {
	return errors.New("bench reads /proc: it runs on Linux only")
}

// benchFloorCmd: see benchCmd.
func benchFloorCmd(ctx context.Context, args []string) error { return benchCmd(ctx, args) }
