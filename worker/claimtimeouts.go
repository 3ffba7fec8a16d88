package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/journal"
)

// minAttemptTimeout is the shortest per-attempt timeout boundedQueue sets:
// below it even a healthy Queue could not answer.
const minAttemptTimeout = time.Second

// attemptsBeforeExpiry is how many attempts of a call near the end of a
// claim must fit before takenUntil.
const attemptsBeforeExpiry = 3

// attemptTimeout is the per-attempt timeout of a call made with remaining
// time left on the claim: a third of it (so a stalled attempt is abandoned
// and at least three attempts fit before takenUntil), at most the client's
// default, at least minAttemptTimeout.
func attemptTimeout(remaining time.Duration) time.Duration {
	return min(max(remaining/attemptsBeforeExpiry, minAttemptTimeout), taskcluster.DefaultAttemptTimeout)
}

// runCallRetryWindow bounds the HTTP-level retries of one reclaim or
// resolution call, so that its failures reach the caller's loop (which
// retries until takenUntil) and the outage log within seconds.
const runCallRetryWindow = 3 * time.Second

// boundedQueue returns a Queue on a copy of q's client whose attempts are
// bounded by attemptTimeout for a claim valid until until (local clock),
// and whose retries of one call by runCallRetryWindow.
func boundedQueue(q *taskcluster.Queue, until time.Time) *taskcluster.Queue {
	c := *q.Client()
	d := attemptTimeout(time.Until(until))
	if c.AttemptTimeout <= 0 || c.AttemptTimeout > d {
		c.AttemptTimeout = d
	}
	if c.MaxElapsedTime <= 0 || c.MaxElapsedTime > runCallRetryWindow {
		c.MaxElapsedTime = runCallRetryWindow
	}
	return c.Queue()
}

// report sends the resolution res of the run to the Queue.
func report(ctx context.Context, queue *taskcluster.Queue, taskID string, runID int, res task.Resolution) error {
	var err error
	switch res.State {
	case task.Completed:
		_, err = queue.ReportCompleted(ctx, taskID, runID)
	case task.Failed:
		_, err = queue.ReportFailed(ctx, taskID, runID)
	default:
		_, err = queue.ReportException(ctx, taskID, runID, string(res.Reason))
	}
	return err
}

// resolveDespiteAuthError retries a resolution the Queue refused with 401
// or 403 (first, an error): with the worker's own credentials (enough when
// they hold queue:resolve-task:<taskId>/<runId>, the one scope the Queue's
// reportCompleted/reportFailed/reportException require), then with fresh
// task credentials from a reclaimTask (signed with the run's credentials,
// then the worker's). It reports whether the run is resolved; the
// caller logs the failure.
func (w *Worker) resolveDespiteAuthError(ctx context.Context, ar *activeRun, res task.Resolution, first error, log *slog.Logger) bool {
	taskID, runID := ar.claim.Status.TaskID, ar.claim.RunID
	until := ar.TakenUntil()
	actx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	own := boundedQueue(w.client().Queue(), until)
	log.Warn("the Queue refused the resolution with the task credentials; retrying with the worker's own", "resolution", res.String(), "error", first)
	err := report(actx, own, taskID, runID, res)
	if err == nil {
		return true
	}
	log.Warn("the worker's own credentials were refused too; reclaiming for fresh task credentials", "error", err)
	qc := *w.client()
	qc.Credentials = ar.creds.Get
	for _, q := range []*taskcluster.Queue{boundedQueue(qc.Queue(), until), own} {
		resp, rerr := q.ReclaimTask(actx, taskID, runID)
		if rerr != nil {
			log.Warn("reclaimTask for fresh credentials failed", "error", rerr)
			continue
		}
		ar.creds.Set(resp.Credentials)
		ar.setTakenUntil(resp.TakenUntil)
		ar.record.update(func(r *journal.Record) { r.TakenUntil, r.Credentials = resp.TakenUntil, resp.Credentials })
		if err = report(actx, boundedQueue(qc.Queue(), ar.TakenUntil()), taskID, runID, res); err == nil {
			return true
		}
		log.Warn("resolution with fresh task credentials failed", "error", err)
		break
	}
	return false
}
