package taskrun

import (
	"fmt"
	"time"

	"github.com/workergen/workergen/task"
)

// writeHeader starts the task log: which task and run, on which worker,
// profile, version and engine, and the task's name.
func (r *Runner) writeHeader(tc *task.Context) {
	w := r.Info
	tc.Logf("task %s run %d on worker %s/%s (workerPoolId %s), profile %s, workergen %s, engine %s",
		tc.TaskID, tc.RunID, orDash(w.WorkerGroup), orDash(w.WorkerID), orDash(w.WorkerPoolID), w.Profile, w.Version, w.Engine)
	if name := tc.Definition.Metadata.Name; name != "" {
		tc.Logf("task name: %s", name)
	}
}

// writeFooter records how the task ended: exit code, run time, resolution.
func (r *Runner) writeFooter(tc *task.Context, out Outcome) {
	exit := "none"
	if out.ExitCode >= 0 {
		exit = fmt.Sprint(out.ExitCode)
	}
	tc.Logf("exit code: %s; task duration: %s; resolution: %s", exit, out.Duration.Round(time.Millisecond), out.Resolution)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
