// Package gitcmd runs git for the build's version stamping.
package gitcmd

import (
	"context"
	"os/exec"
	"strings"
)

// Output runs `git args...` in dir and returns its standard output without
// surrounding white space, or "" when git is missing or fails (no
// repository, no tag, ...): callers treat a missing answer as unknown.
func Output(ctx context.Context, dir string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
