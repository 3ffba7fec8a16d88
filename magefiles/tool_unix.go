//go:build mage && unix

package main

import (
	"context"
	"fmt"
	"os"
	"syscall"
)

// execTool compiles internal/magetool and replaces this process with it
// (execve), args its command line. The tool then is mage's foreground
// process: signals sent to it or to its process group reach it, and
// nothing is left behind when it exits (the embedded Queue's server runs
// in it). It returns only an error.
func execTool(ctx context.Context, args ...string) error {
	bin, err := compileTool(ctx)
	if err != nil {
		return err
	}
	err = syscall.Exec(bin, append([]string{bin}, args...), os.Environ())
	return fmt.Errorf("running %s: %w", bin, err)
}
