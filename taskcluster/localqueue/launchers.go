package localqueue

import (
	"context"
	"fmt"
	"os"
	"time"
)

// launcherNames are the commands that run a program as their child, wait
// for it and die of SIGTERM without passing it on: `go` (go tool, go run)
// and mage's launcher (which runs the compiled magefile).
var launcherNames = map[string]bool{"go": true, "mage": true}

// watchedParent is a process and the parent it had: when the parent exits
// the process is re-parented (to init or a subreaper), so its parent pid
// changes.
type watchedParent struct {
	pid, ppid int
	name      string // the parent's command name, or "parent"
}

// watchLaunchers returns the processes whose parents serve watches: this
// one, when always is set or its parent is a launcher (launcherNames),
// and each launcher's own parent while that is a launcher too (at most 4
// levels; `go tool mage` is go -> mage -> the compiled magefile). Command
// names come from /proc on Linux; elsewhere only always watches (this
// process's parent).
func watchLaunchers(always bool) []watchedParent {
	var out []watchedParent
	pid, ppid := os.Getpid(), os.Getppid()
	for i := 0; i < 4 && ppid > 1; i++ {
		grand, name, err := procParent(ppid)
		launcher := err == nil && launcherNames[name]
		if !launcher && (i > 0 || !always) {
			break
		}
		if name == "" {
			name = "parent"
		}
		out = append(out, watchedParent{pid: pid, ppid: ppid, name: name})
		if !launcher {
			break
		}
		pid, ppid = ppid, grand
	}
	return out
}

// parentOf returns the parent pid of pid (this process: os.Getppid).
func parentOf(pid int) (int, error) {
	if pid == os.Getpid() {
		return os.Getppid(), nil
	}
	ppid, _, err := procParent(pid)
	return ppid, err
}

// stopWithLaunchers returns a context that ends, with a cause naming the
// process, when a watched process's parent exits (checked every 100 ms).
// With nothing to watch it is ctx.
func stopWithLaunchers(ctx context.Context, watch []watchedParent) (context.Context, context.CancelFunc) {
	if len(watch) == 0 {
		return context.WithCancel(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, w := range watch {
				if ppid, err := parentOf(w.pid); err != nil || ppid != w.ppid {
					cancel(fmt.Errorf("the launching process %s (pid %d) exited", w.name, w.ppid))
					return
				}
			}
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}
