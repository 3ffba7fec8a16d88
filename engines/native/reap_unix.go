//go:build unix

package native

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// group is the command's process group ID, 0 once released.
func (p *proc) group() int { return p.pgid }

// reapProcessGroup sends SIGKILL to process group pg and waits (within
// ctx) until no member is left. A group that does not exist is not an
// error.
func reapProcessGroup(ctx context.Context, pg int) error {
	if pg <= 1 {
		return fmt.Errorf("refusing to kill process group %d", pg)
	}
	if err := syscall.Kill(-pg, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("killing process group %d: %w", pg, err)
	}
	for {
		if !groupAlive(pg) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process group %d still has members after SIGKILL: %w", pg, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
