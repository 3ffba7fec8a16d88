//go:build mage

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/magefile/mage/mg"
)

// Queue is the embedded Taskcluster Queue (taskcluster/localqueue):
// `queue` (queue:serve) runs it, `queue:create` adds tasks to it.
type Queue mg.Namespace

// Aliases: `go tool mage queue` is queue:serve.
var Aliases = map[string]interface{}{"queue": Queue.Serve}

// defaultQueueDir is the state directory of `queue` and `queue:create`
// without -dir or QUEUE_DIR.
var defaultQueueDir = filepath.Join("dist", "queue")

// Serve runs the embedded Queue in this process (mage's, replaced by the internal/magetool program) until SIGINT/SIGTERM (or mage's exit), printing its rootUrl, credentials and worker config files and how to create tasks; `queue` for short.
func (Queue) Serve(ctx context.Context,
	addr *string, // listen address, or a port on 127.0.0.1; 0 picks a free one (QUEUE_ADDR; 127.0.0.1:8080)
	dir *string, // state directory (QUEUE_DIR; dist/queue)
	tasks *string, // task files, directories or globs, comma-separated, created at start (TASKS)
	taskQueueId *string, // taskQueueId of those tasks and the worker config's workerPoolId (default: the files' own; workergen/local)
) error {
	args := []string{
		"-addr", flagOrEnv(addr, "QUEUE_ADDR", "127.0.0.1:8080"),
		"-dir", flagOrEnv(dir, "QUEUE_DIR", defaultQueueDir),
		"-tasks", flagOrEnv(tasks, "TASKS", ""),
		"-task-queue-id", flagOrEnv(taskQueueId, "", ""),
	}
	return execTool(ctx, append([]string{"queue", "serve"}, args...)...)
}

// Create adds tasks from task files to the running embedded Queue through its API and prints their taskIds: queue:create FILES [-dir=...] [-taskQueueId=...].
//
// FILES are task definitions (JSON or YAML, as in examples/), directories
// or globs, comma-separated; more may follow as arguments, so
// queue:create must come last on the command line. The rootUrl and
// credentials are those in <dir>/credentials.json.
func (Queue) Create(ctx context.Context, files string,
	dir *string, // state directory of the running Queue (QUEUE_DIR; dist/queue)
	taskQueueId *string, // taskQueueId for every task (default: each file's own)
) error {
	// mage takes one positional argument; a shell-expanded glob gives
	// several, and mage would run the rest as targets. So the whole
	// command line after queue:create is read here, in any order, and the
	// process exits when done.
	list, flags := createArgs(files)
	args := []string{"-dir", flagOrEnv(dir, "QUEUE_DIR", defaultQueueDir), "-task-queue-id", flagOrEnv(taskQueueId, "", "")}
	if len(list) == 0 {
		return mg.Fatal(64, "queue:create: no task files: queue:create FILES [-dir=<state dir>] [-taskQueueId=<id>]")
	}
	for name, v := range flags {
		switch name {
		case "dir":
			args = append(args, "-dir", v)
		case "taskqueueid":
			args = append(args, "-task-queue-id", v)
		default:
			return mg.Fatalf(64, "queue:create: unknown flag -%s: use -dir=<state dir> or -taskQueueId=<id>", name)
		}
	}
	// execTool does not return on success: the process becomes the
	// tool, so mage never sees the further arguments.
	return execTool(ctx, append(append([]string{"queue", "create"}, args...), list...)...)
}

// createArgs returns the task files and the -name=value flags (names
// lowercased, as mage reads them) among the arguments after queue:create
// (files, mage's positional argument, is the first of them), files split
// at commas.
func createArgs(files string) (list []string, flags map[string]string) {
	rest := []string{files}
	for i, a := range os.Args {
		if strings.EqualFold(a, "queue:create") {
			rest = os.Args[i+1:]
			break
		}
	}
	flags = map[string]string{}
	for _, a := range rest {
		if strings.HasPrefix(a, "-") {
			name, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			flags[strings.ToLower(name)] = v
			continue
		}
		for _, f := range strings.Split(a, ",") {
			if f != "" {
				list = append(list, f)
			}
		}
	}
	return list, flags
}

// flagOrEnv is *flag when given, else the environment variable env (if
// named and set), else def.
func flagOrEnv(flag *string, env, def string) string {
	if flag != nil {
		return *flag
	}
	if v := os.Getenv(env); env != "" && v != "" {
		return v
	}
	return def
}
