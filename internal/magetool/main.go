// Command magetool runs the `go tool mage` targets that need the
// generator or the embedded Queue: build, generate, demo, release, bench
// and queue. The magefiles
// compile it (`go build`, with a progress line when that takes a while)
// and run it, instead of importing gen, gen/build and release themselves:
// mage compiles the magefiles before it prints anything, so whatever they
// import is compiled in silence on a cold Go cache, and CUE alone is most
// of that time.
//
// Usage: magetool build <profile> | generate [<profile>] | demo |
// release [<profile>] | bench | queue serve|create ARGS. Environment variables as the targets
// document them (PLATFORMS, RELEASE_DIR, DIST_DIR, BENCH_*, ...). Exit
// status 0 on success, 1 when the target failed (the error on stderr), 64
// for a bad command line or task file.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/workergen/workergen/taskcluster/localqueue"
)

// commands are the targets by name; args are the command line after it.
var commands = map[string]func(ctx context.Context, args []string) error{
	"build":    buildCmd,
	"generate": generateCmd,
	"demo":     demoCmd,
	"release":  releaseCmd,
	"bench":    benchCmd,
	// bench-floor is bench's own helper (the round-trip floor measured
	// from a separate process), not a target.
	"bench-floor": benchFloorCmd,
	"queue":       queueCmd,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: magetool build <profile> | generate [<profile>] | demo | release [<profile>] | bench | queue serve|create ARGS")
		os.Exit(64)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := commands[os.Args[1]](ctx, os.Args[2:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(localqueue.ExitCode(err)) // 64 for a bad command line or task file
	}
}

// optionalArg is args' only element, or "" when there is none.
func optionalArg(args []string) (string, error) {
	switch len(args) {
	case 0:
		return "", nil
	case 1:
		return args[0], nil
	}
	return "", fmt.Errorf("want at most one profile, got %q", args)
}
