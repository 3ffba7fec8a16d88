package native

import (
	"context"
	"errors"
	"fmt"

	"github.com/workergen/workergen/engines"
)

var _ engines.ShellSandbox = (*sandbox)(nil)

// Shell is not available on Windows yet (it needs ConPTY): it returns an
// error wrapping errors.ErrUnsupported.
func (s *sandbox) Shell(context.Context, engines.TermSize) (engines.Shell, error) {
	return nil, fmt.Errorf("interactive shell on Windows (ConPTY): %w", errors.ErrUnsupported)
}

// closeShells does nothing: no shells on Windows.
func (s *sandbox) closeShells() {}

// ptyShell has no Windows implementation yet.
type ptyShell struct{}
