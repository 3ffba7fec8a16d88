//go:build mage && !unix

package main

import (
	"context"
	"os"
)

// execTool runs internal/magetool with args as a child (no execve here)
// and exits with this process once it has succeeded, so mage runs no
// further arguments as targets.
func execTool(ctx context.Context, args ...string) error {
	if err := tool(ctx, args...); err != nil {
		return err
	}
	os.Exit(0)
	return nil
}
