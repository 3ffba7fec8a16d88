package worker

import (
	"context"
	"sync"
	"time"

	"github.com/workergen/workergen/taskcluster"
)

// StopReason says why Work returned without an error.
type StopReason int

const (
	// StopNone: Work has not returned, or returned an error.
	StopNone StopReason = iota
	// StopTasksComplete: cfg.NumberOfTasksToRun runs were claimed and
	// have ended.
	StopTasksComplete
	// StopIdle: no task ran for cfg.IdleTimeout seconds (and, when
	// Lifecycle.WorkerManager is set, worker-manager confirmed that the
	// worker should terminate).
	StopIdle
	// StopWorkerManager: worker-manager's shouldWorkerTerminate, checked
	// every Lifecycle.WorkerManagerCheckInterval, said the worker is no
	// longer needed; running tasks were finished first.
	StopWorkerManager
	// StopCancelled: Work's context was cancelled (SIGTERM or SIGINT).
	StopCancelled
	// StopGracefulTermination: GracefulTermination was called
	// (worker-runner's graceful-termination message).
	StopGracefulTermination
)

// ExitCode is the process exit code of a worker that stopped for r,
// following generic-worker's table (references/generic-worker/usage.mdx):
// 0 tasks complete, 68 idle, 70 worker-manager, 71 signal, 72 graceful
// termination (generic-worker's spot termination).
func (r StopReason) ExitCode() int {
	switch r {
	case StopIdle:
		return ExitIdle
	case StopWorkerManager:
		return ExitWorkerManager
	case StopCancelled:
		return ExitSignal
	case StopGracefulTermination:
		return ExitGracefulTermination
	}
	return ExitCompleted
}

func (r StopReason) String() string {
	return [...]string{"running", "numberOfTasksToRun reached", "idle timeout", "worker-manager asked the worker to terminate",
		"stopped by a signal", "graceful termination"}[r]
}

// DefaultWorkerManagerCheckInterval is how often a Worker with
// Lifecycle.WorkerManager set asks shouldWorkerTerminate while it works.
const DefaultWorkerManagerCheckInterval = 5 * time.Minute

// Lifecycle is the part of a Worker that ends its life in other ways than
// its context: worker-runner's graceful-termination (GracefulTermination)
// and worker-manager's shouldWorkerTerminate. Its zero value asks no
// worker-manager. Set its fields before Work.
//
// How a stop treats running tasks:
//
//   - SIGTERM/SIGINT (Worker.Shutdown with finishTasks) or Work's context
//     cancelled: stop claiming; running tasks get cfg.ShutdownGracePeriod
//     seconds, then are killed, their uploads cut, and they resolve
//     exception/worker-shutdown (see Worker.Shutdown).
//   - GracefulTermination(true), or worker-manager saying terminate: stop
//     claiming and let running tasks finish, however long they take (a
//     later signal or GracefulTermination(false) shortens that).
//   - GracefulTermination(false): stop claiming and stop running tasks at
//     once (Worker.Shutdown without grace); they resolve
//     exception/worker-shutdown with what they uploaded.
type Lifecycle struct {
	// WorkerManager: the worker was registered by worker-runner, so its
	// credentials may call worker-manager. Before an idle exit it asks
	// shouldWorkerTerminate and keeps working when the answer is no (as
	// generic-worker does under worker-runner); while working it asks
	// every WorkerManagerCheckInterval and stops (StopWorkerManager) when
	// the answer is yes.
	WorkerManager bool
	// WorkerManagerCheckInterval: 0 means
	// DefaultWorkerManagerCheckInterval.
	WorkerManagerCheckInterval time.Duration

	lmu       sync.Mutex
	reason    StopReason
	requested bool               // a stop was requested (GracefulTermination, worker-manager)
	cancel    context.CancelFunc // cancels Work's claim context
	parent    context.Context    // Work's context
	hurry     chan struct{}      // closed: stop running tasks now
	done      chan struct{}      // closed when Work returns
}

func (lc *Lifecycle) initLocked() {
	if lc.hurry == nil {
		lc.hurry = make(chan struct{})
		lc.done = make(chan struct{})
	}
}

// GracefulTermination stops the worker as worker-runner's
// graceful-termination message asks (see Lifecycle); it may be called
// before Work (Work then stops at once), from any goroutine, and more than
// once (finishTasks false after true stops running tasks).
func (lc *Lifecycle) GracefulTermination(finishTasks bool) {
	lc.requestStop(StopGracefulTermination, finishTasks)
}

// StopReason says why Work returned (StopNone while it runs or after an
// error).
func (lc *Lifecycle) StopReason() StopReason {
	lc.lmu.Lock()
	defer lc.lmu.Unlock()
	return lc.reason
}

// setReason records r unless a reason is already recorded.
func (lc *Lifecycle) setReason(r StopReason) {
	lc.lmu.Lock()
	defer lc.lmu.Unlock()
	if lc.reason == StopNone {
		lc.reason = r
	}
}

func (lc *Lifecycle) requestStop(r StopReason, finishTasks bool) {
	lc.lmu.Lock()
	lc.initLocked()
	if lc.reason == StopNone {
		lc.reason = r
	}
	lc.requested = true
	if !finishTasks {
		select {
		case <-lc.hurry:
		default:
			close(lc.hurry)
		}
	}
	cancel := lc.cancel
	lc.lmu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// beginLife starts Work's life: the returned context ends with ctx or a
// stop request; the worker-manager check runs until endLife.
func (w *Worker) beginLife(ctx context.Context) context.Context {
	lc := &w.Lifecycle
	claimCtx, cancel := context.WithCancel(ctx)
	lc.lmu.Lock()
	lc.initLocked()
	lc.done = make(chan struct{}) // one per Work call
	lc.parent, lc.cancel = ctx, cancel
	requested, done := lc.requested, lc.done
	lc.lmu.Unlock()
	if requested {
		cancel()
	}
	if lc.WorkerManager {
		go w.watchWorkerManager(claimCtx, done)
	}
	go w.hurryOnRequest(lc.hurry, done)
	return claimCtx
}

// endLife records the stop reason of a Work that returned without error
// (fatal is its error) and ends the goroutines of beginLife.
func (w *Worker) endLife(fatal error) {
	lc := &w.Lifecycle
	lc.lmu.Lock()
	defer lc.lmu.Unlock()
	switch {
	case fatal != nil:
	case lc.reason != StopNone:
	case lc.parent.Err() != nil:
		lc.reason = StopCancelled
	default:
		lc.reason = StopTasksComplete
	}
	if lc.cancel != nil {
		lc.cancel()
	}
	close(lc.done)
}

// confirmIdleExit is asked when the idle timeout is reached: true to
// exit. With Lifecycle.WorkerManager it asks shouldWorkerTerminate and
// says no when worker-manager wants the worker to keep working, or cannot
// be reached (the idle time then starts again); a refusal (4xx) is taken
// as a yes, as without worker-manager.
func (w *Worker) confirmIdleExit(ctx context.Context) bool {
	if !w.WorkerManager {
		w.setReason(StopIdle)
		return true
	}
	terminate, reason, err := w.shouldTerminate(ctx)
	log := w.logger()
	switch code := taskcluster.StatusCode(err); {
	case err == nil && terminate:
		log.Info("worker-manager confirms the idle worker should terminate", "reason", reason)
	case err == nil:
		log.Info("worker-manager says the idle worker should keep working", "reason", reason)
		return false
	case code >= 400 && code < 500 && code != 408 && code != 429:
		log.Error("shouldWorkerTerminate refused; exiting on idle timeout without worker-manager's confirmation", "error", err)
	default:
		log.Warn("shouldWorkerTerminate failed; working on and asking again after the next idle timeout", "error", err)
		return false
	}
	w.setReason(StopIdle)
	return true
}

// shouldTerminate asks worker-manager whether this worker should
// terminate, with the worker's current credentials.
func (w *Worker) shouldTerminate(ctx context.Context) (terminate bool, reason string, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), workerManagerCallTimeout)
	defer cancel()
	c := w.Config
	resp, err := w.client().WorkerManager().ShouldWorkerTerminate(ctx, c.WorkerPoolID, c.WorkerGroup, c.WorkerID)
	if err != nil {
		return false, "", err
	}
	return resp.Terminate, resp.Reason, nil
}

// workerManagerCallTimeout bounds one shouldWorkerTerminate call, retries
// included.
const workerManagerCallTimeout = 30 * time.Second

// watchWorkerManager asks shouldWorkerTerminate every
// WorkerManagerCheckInterval until ctx ends or done is closed; a yes stops
// the worker after its running tasks (StopWorkerManager).
func (w *Worker) watchWorkerManager(ctx context.Context, done <-chan struct{}) {
	interval := w.WorkerManagerCheckInterval
	if interval <= 0 {
		interval = DefaultWorkerManagerCheckInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-t.C:
		}
		terminate, reason, err := w.shouldTerminate(ctx)
		if err != nil {
			w.logger().Warn("shouldWorkerTerminate failed; asking again later", "error", err, "retryIn", interval)
			continue
		}
		if terminate {
			w.logger().Info("worker-manager says the worker should terminate; finishing running tasks, claiming no more", "reason", reason)
			w.requestStop(StopWorkerManager, true)
			return
		}
	}
}

// hurryOnRequest turns GracefulTermination(false) into a Shutdown whose
// running tasks are stopped at once: they resolve exception/worker-shutdown
// after uploading what they have (logs, artifacts), which the grace period
// bounds as after a signal. It returns when done closes.
func (w *Worker) hurryOnRequest(hurry, done <-chan struct{}) {
	select {
	case <-hurry:
		w.Shutdown("graceful-termination received (finish-tasks: false)", true)
		w.stopRunningTasks()
	case <-done:
	}
}
