//go:build mage

package main

import (
	"context"
	"os"
)

// Demo builds the <os>-native worker for this machine and runs it against the embedded Queue loaded with examples/*.yml, then prints each task's resolution, log and artifacts (then examples/linux-docker on a container daemon, when there is one).
func Demo(ctx context.Context) error {
	return tool(ctx, "demo")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
