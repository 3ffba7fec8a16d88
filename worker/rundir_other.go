//go:build !linux

package worker

import (
	"errors"
	"log/slog"
	"os"
)

// freshState is unused here: run directories are not reused outside
// Linux (see rundir.go).
type freshState struct{}

func captureFresh(string, *os.File, *slog.Logger) *freshState { return nil }

func (p *sparePool) recycle(string) (*spare, error) {
	return nil, errors.New("run directories are reused on Linux only")
}

func (p *sparePool) take(sp *spare, _ string) (*os.File, error) {
	p.discard(sp)
	return nil, errors.New("run directories are reused on Linux only")
}

// removeTree removes path and everything below it.
func removeTree(path string) error { return os.RemoveAll(path) }
