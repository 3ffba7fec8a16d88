package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/worker"
)

// defaultQueueDir is the state directory of `queue` and `queue:create`
// without -dir or QUEUE_DIR (relative to the checkout).
var defaultQueueDir = filepath.Join("dist", "queue")

// queueCmd is `magetool queue serve|create ARGS`: the localqueue command
// line (taskcluster/localqueue.Command) as `go tool mage queue` runs it.
// The magefile execs this program in its own process, so the server runs
// in mage's foreground process and stops also when mage's launcher (its
// parent) exits, which it does on SIGTERM without passing it on. Errors
// that are the command line's or a task file's are *localqueue.UsageError
// (exit 64).
func queueCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "serve" && args[0] != "create") {
		return &localqueue.UsageError{Err: fmt.Errorf("usage: magetool queue serve|create ARGS")}
	}
	c := &localqueue.Command{
		Parse: func(data []byte, now time.Time) (localqueue.TaskDefinition, error) {
			return worker.ParseTaskFile(data, now)
		},
		Stdout: os.Stdout,
		Log:    os.Stderr,
		Name:   "go tool mage queue",
		CreateHint: func(dir string) string {
			hint := "go tool mage queue:create 'examples/*.yml'"
			if def, _ := filepath.Abs(defaultQueueDir); dir != def {
				hint += " -dir=" + dir
			}
			return hint + "   (files, directories or quoted globs)"
		},
		DefaultDir:     defaultQueueDir,
		StopWithParent: true,
	}
	if args[0] == "create" {
		return c.Create(ctx, args[1:])
	}
	return c.Serve(ctx, args[1:])
}
