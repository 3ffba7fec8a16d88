package worker

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/journal"
	"github.com/workergen/workergen/worker/metrics"
	"github.com/workergen/workergen/worker/taskrun"
)

// Worker is the claim loop of `work`: it claims tasks from the Queue for
// cfg.WorkerPoolID (the taskQueueId), runs up to cfg.Capacity at once with
// the Runner, keeps each claim alive with reclaimTask, uploads artifacts
// with the run's task credentials, and resolves every claimed run exactly
// once (reportCompleted / reportFailed / reportException), except runs the
// Queue took back (reclaim answered 409), which are stopped and forgotten.
type Worker struct {
	Runner *Runner
	Config *Config
	// Client calls the Queue with the worker's own credentials (claimWork).
	// Each run gets a copy signed with the run's task credentials.
	Client *taskcluster.Client
	Logger *slog.Logger
	// Metrics, when set, records the worker's Prometheus metrics
	// (package worker/metrics); nil records nothing.
	Metrics *metrics.Recorder

	// ClaimPollInterval is the pause after a claimWork that returned no
	// task before asking again; zero means 1 second. (claimWork itself
	// long-polls, so this only matters for Queues that answer at once.)
	ClaimPollInterval time.Duration
	// OutageReminder is how often a Queue outage is logged again while it
	// lasts; zero means DefaultOutageReminder (outage.go).
	OutageReminder time.Duration

	// Lifecycle: worker-runner's graceful termination, worker-manager's
	// shouldWorkerTerminate, and why Work returned (lifecycle.go).
	Lifecycle

	claimed  atomic.Int64
	resolved atomic.Int64

	clientOnce sync.Once
	skewed     *taskcluster.Client // Client with Skew set; see client

	shutdown shutdownState    // see Shutdown
	jrnl     *journal.Journal // run journal, nil when unusable
	spares   *sparePool       // spare run directories (rundir.go), set by Work
	outage   *outageLog       // Queue outages, set by Work
	claiming atomic.Bool      // a claimWork call is in flight (see Shutdown)
}

// Stats are counters of a Worker.
type Stats struct {
	Claimed  int64 // runs claimed
	Resolved int64 // runs resolved (reported) by this worker
}

// Stats returns the worker's counters so far.
func (w *Worker) Stats() Stats {
	return Stats{Claimed: w.claimed.Load(), Resolved: w.resolved.Load()}
}

// client returns the worker's Client with a shared ClockSkew, so that
// takenUntil is read on the local clock however far off it is.
func (w *Worker) client() *taskcluster.Client {
	w.clientOnce.Do(func() {
		c := *w.Client
		if c.Skew == nil {
			c.Skew = new(taskcluster.ClockSkew)
		}
		w.skewed = &c
	})
	return w.skewed
}

func (w *Worker) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}

// Work runs the claim loop until ctx is cancelled (graceful shutdown: stop
// claiming, give running tasks cfg.ShutdownGracePeriod seconds, then kill
// them and resolve them exception/worker-shutdown), until
// cfg.NumberOfTasksToRun runs were claimed and finished, or until the worker
// was idle for cfg.IdleTimeout seconds, or until a stop through Lifecycle
// (graceful termination, worker-manager). It returns only after every
// claimed run is resolved (or lost to the Queue); StopReason then says why.
// The error, wrapping ErrConfig, is a claimWork the Queue refused
// (credentials, scopes, workerPoolId), or a tasksDir another worker
// process is using (lockTasksDir).
func (w *Worker) Work(ctx context.Context) error {
	unlock, err := lockTasksDir(w.Config.TasksDir) // tasksdirlock.go
	if err != nil {
		return err
	}
	defer unlock()
	if err := w.checkQueue(ctx); err != nil { // startcheck.go
		return err
	}
	w.outage = newOutageLog(w.logger, w.OutageReminder)
	defer w.outage.stop()
	w.jrnl = w.recoverRuns(ctx)
	defer w.jrnl.Close()
	w.spares = newSparePool(w.Config.TasksDir, 2*max(w.Config.Capacity, 1), w.runsLeaveNoProcess(), w.logger())
	defer w.spares.close()
	l := w.newClaimLoop(w.beginLife(ctx))
	cfg := w.Config
	w.logger().Info("worker started", "workerPoolId", cfg.WorkerPoolID, "workerGroup", cfg.WorkerGroup, "workerId", cfg.WorkerID, "capacity", l.capacity)
	w.shutdown.attach(l)
	defer w.shutdown.detach()
	defer context.AfterFunc(ctx, func() { w.Shutdown("shutdown requested", true) })()
	fatal := l.claimUntilDone()
	l.drain()
	l.stopClaims()
	l.cutRuns()
	w.endLife(fatal)
	w.logger().Info("worker stopped", "claimed", w.claimed.Load(), "resolved", w.resolved.Load())
	return fatal
}

// claimLoop is the state of one Work call.
type claimLoop struct {
	w        *Worker
	ctx      context.Context // cancelled on shutdown
	runCtx   context.Context // ctx without its cancellation, for the runs
	capacity int
	limit    int64         // cfg.NumberOfTasksToRun; 0 means none
	poll     time.Duration // pause after an empty claimWork
	// client is the worker's client for claimWork; its failures are
	// retried by the loop, with a warning each time, rather than for
	// minutes inside one call: an operator sees at once that the Queue is
	// unreachable.
	client   taskcluster.Client
	backoff  *backoff
	lastBusy time.Time // when a run last ran or ended, for the idle timeout

	mu     sync.Mutex
	active map[*activeRun]struct{} // runs claimed and not yet over
	busy   int                     // active runs holding a unit of capacity
	wg     sync.WaitGroup
	slot   chan struct{} // a unit of capacity was freed
	cutState
}

func (w *Worker) newClaimLoop(ctx context.Context) *claimLoop {
	capacity := max(w.Config.Capacity, 1)
	poll := w.ClaimPollInterval
	if poll <= 0 {
		poll = time.Second
	}
	ctx, stopClaims := context.WithCancel(ctx)
	runCtx, cutRuns := context.WithCancel(context.WithoutCancel(ctx))
	l := &claimLoop{
		w: w, ctx: ctx, runCtx: runCtx,
		cutState: cutState{stopClaims: stopClaims, cutRuns: cutRuns, cutDone: make(chan struct{})},
		capacity: capacity, limit: int64(w.Config.NumberOfTasksToRun), poll: poll,
		client: *w.client(), backoff: newBackoff(), lastBusy: time.Now(),
		active: map[*activeRun]struct{}{}, slot: make(chan struct{}, capacity),
	}
	l.client.MaxElapsedTime = claimRetryWindow
	if l.client.AttemptTimeout <= 0 || l.client.AttemptTimeout > claimAttemptTimeout {
		l.client.AttemptTimeout = claimAttemptTimeout
	}
	return l
}

// claimUntilDone claims tasks and starts their runs until ctx ends, the
// limit or the idle timeout is reached, or the Queue refuses claimWork
// (the returned error).
func (l *claimLoop) claimUntilDone() error {
	for l.ctx.Err() == nil {
		if l.limitReached() {
			return nil
		}
		free := l.free()
		if free <= 0 {
			l.waitForSlot()
			continue
		}
		if l.idleTimedOut() {
			return nil
		}
		resp, err := l.claim(free)
		if err != nil {
			if stop, fatal := l.claimFailed(err); stop {
				return fatal
			}
			continue
		}
		l.backoff.reset()
		l.w.outage.succeeded("claimWork")
		if len(resp.Tasks) == 0 {
			if !l.waitForWork() {
				return nil
			}
			continue
		}
		l.lastBusy = time.Now()
		l.start(resp.Tasks)
	}
	return nil
}

// running is how many runs hold a unit of capacity: claimed runs whose
// resolution is not yet under way (freeSlot).
func (l *claimLoop) running() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busy
}

// free is how many tasks the next claimWork may ask for: the units of
// capacity no run holds, and no more than leaves 2 × capacity runs
// unresolved (a Queue slow to answer reportCompleted would otherwise
// have the worker claim run after run while the reports pile up; the
// journal reserves slots for that many).
func (l *claimLoop) free() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return min(l.capacity-l.busy, 2*l.capacity-len(l.active))
}

// unresolved is how many claimed runs are not over yet, the ones
// resolving included.
func (l *claimLoop) unresolved() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.active)
}

// freeSlot gives back ar's unit of capacity, once: when its resolution is
// about to be reported, or when it ends without one. So at capacity 1
// the next claimWork goes out with the finished run's reportCompleted
// instead of after its answer: the run's sandbox is gone, its artifacts
// and log uploaded and its plugins disposed, and what is left (the
// resolution's round trip, then the clean-up) uses no more of the host
// than the clean-up alone, which already overlapped the next claim.
func (l *claimLoop) freeSlot(ar *activeRun) {
	l.mu.Lock()
	freed := ar.slotFreed
	if !freed {
		ar.slotFreed = true
		l.busy--
	}
	l.mu.Unlock()
	if !freed {
		l.signalSlot()
	}
}

// signalSlot wakes waitForSlot and waitForWork: capacity may be free.
func (l *claimLoop) signalSlot() {
	select {
	case l.slot <- struct{}{}:
	default:
	}
}

func (l *claimLoop) limitReached() bool {
	if l.limit > 0 && l.w.claimed.Load() >= l.limit {
		l.w.logger().Info("numberOfTasksToRun reached; no more claims", "numberOfTasksToRun", l.limit)
		return true
	}
	return false
}

// waitForSlot waits, at full capacity, for a run to end (or ctx).
func (l *claimLoop) waitForSlot() {
	select {
	case <-l.slot:
		l.lastBusy = time.Now() // a run just ended: idle time starts now
	case <-l.ctx.Done():
	}
}

// idleTimedOut reports whether no run ran for cfg.IdleTimeout seconds.
func (l *claimLoop) idleTimedOut() bool {
	if l.running() > 0 {
		l.lastBusy = time.Now()
		return false
	}
	idle := l.w.Config.IdleTimeout
	if idle > 0 && time.Duration(idle)*time.Second-time.Since(l.lastBusy) <= 0 {
		l.w.logger().Info("idle timeout reached", "idleTimeout", idle)
		if !l.w.confirmIdleExit(l.ctx) {
			l.lastBusy = time.Now()
			return false
		}
		return true
	}
	return false
}

// claim asks the Queue for up to free tasks (fewer when the limit is near).
// A claimWork in flight is not cancelled by a shutdown or the idle
// timeout: the Queue may already have claimed tasks for it, which would
// otherwise sit claimed until their claims expire. It is bounded by the
// long poll (20 s on Taskcluster) plus margin.
func (l *claimLoop) claim(free int) (*taskcluster.ClaimWorkResponse, error) {
	n := free
	if l.limit > 0 {
		n = min(n, int(l.limit-l.w.claimed.Load()))
	}
	cfg := l.w.Config
	claimCtx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), claimCallTimeout)
	defer cancel()
	l.w.logger().Debug("claimWork", "tasks", n)
	started := time.Now()
	l.w.claiming.Store(true)
	defer l.w.claiming.Store(false)
	resp, err := l.client.Queue().ClaimWork(claimCtx, cfg.WorkerPoolID, &taskcluster.ClaimWorkRequest{
		WorkerGroup: cfg.WorkerGroup, WorkerID: cfg.WorkerID, Tasks: n,
	})
	l.observeClaim(n, started, resp, err) // telemetry.go
	return resp, err
}

// claimFailed handles a failed claimWork: a refusal that retrying cannot
// help (bad credentials, missing scopes, a wrong workerPoolId) stops the
// loop with fatal; other failures are retried after a backoff.
func (l *claimLoop) claimFailed(err error) (stop bool, fatal error) {
	if l.ctx.Err() != nil {
		return true, nil
	}
	log, cfg := l.w.logger(), l.w.Config
	if code := taskcluster.StatusCode(err); code >= 400 && code < 500 && code != 408 && code != 429 {
		log.Error("claimWork refused; stopping", "error", err)
		return true, fmt.Errorf("%w: the Queue at rootUrl %s refused claimWork for workerPoolId %q (check credentials, their scopes queue:claim-work:%s and queue:worker-id:%s/%s, and rootUrl): %w",
			ErrConfig, l.client.RootURL, cfg.WorkerPoolID, cfg.WorkerPoolID, cfg.WorkerGroup, cfg.WorkerID, err)
	}
	wait := l.backoff.next()
	l.w.outage.failed(log, "claimWork", err)
	log.Debug("claimWork failed; backing off", "error", err, "retryIn", wait)
	return !sleepCtx(l.ctx, wait), nil
}

// waitForWork pauses after a claimWork without tasks until the poll
// interval passed or a run ended; false when ctx ended.
func (l *claimLoop) waitForWork() bool {
	select {
	case <-l.ctx.Done():
		return false
	case <-l.slot:
		l.lastBusy = time.Now()
	case <-time.After(l.poll):
	}
	return true
}

// start runs each claimed task in its own goroutine.
func (l *claimLoop) start(claims []taskcluster.TaskClaim) {
	for _, claim := range claims {
		ar := newActiveRun(claim, l.client.Skew)
		ar.resolving = func() { l.freeSlot(ar) }
		l.mu.Lock()
		l.active[ar] = struct{}{}
		l.busy++
		l.mu.Unlock()
		l.w.claimed.Add(1)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			cleanUp := l.w.runClaim(l.runCtx, ar)
			l.freeSlot(ar) // a run that reported no resolution
			l.mu.Lock()
			delete(l.active, ar)
			l.mu.Unlock()
			l.signalSlot() // free may have been held by unresolved runs
			// The next claim need not wait for the clean-up of this
			// run; Work still does (wg).
			cleanUp()
		}()
	}
}

// drain waits for the running tasks. On a shutdown they may run until its
// deadline (see Worker.Shutdown), which kills them and cuts their
// uploads; runs still unresolved cutResolveTimeout after that are left to
// the next start's recovery. Otherwise they simply finish.
func (l *claimLoop) drain() {
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	if n := l.unresolved(); l.ctx.Err() != nil && n > 0 {
		l.w.logger().Info("shutting down: waiting for running tasks", "running", n)
	}
	select {
	case <-done:
	case <-l.cutDone:
		select {
		case <-done:
		case <-time.After(cutResolveTimeout):
			l.w.logger().Error("runs still unresolved after the shutdown deadline; the next start of this worker resolves them", "running", l.unresolved())
		}
	}
}

// claimRetryWindow bounds the HTTP-level retries of one claimWork call,
// short so that a failing Queue reaches the loop (and the outage log)
// within seconds.
const claimRetryWindow = 3 * time.Second

// claimAttemptTimeout bounds one claimWork attempt: the Queue long-polls
// for about 20 seconds, so a Queue that holds a connection longer without
// answering is failing (and the outage log says so).
const claimAttemptTimeout = 45 * time.Second

// claimCallTimeout bounds one claimWork call, long poll included.
const claimCallTimeout = 90 * time.Second

// activeRun is one claimed run.
type activeRun struct {
	claim  taskcluster.TaskClaim
	ctl    *taskrun.Control
	creds  *taskcluster.CredentialsHolder
	skew   *taskcluster.ClockSkew
	record *runRecord // journal record, nil without a journal

	claimedAt time.Time // when claimWork answered with it
	// resolving is called when the run's resolution is about to be
	// reported (nil: nothing to tell); slotFreed is the claim loop's
	// (under its mu).
	resolving func()
	slotFreed bool

	mu         sync.Mutex
	takenUntil time.Time // on the local clock
}

func newActiveRun(c taskcluster.TaskClaim, skew *taskcluster.ClockSkew) *activeRun {
	a := &activeRun{claim: c, ctl: taskrun.NewControl(), creds: taskcluster.NewCredentialsHolder(c.Credentials), skew: skew, claimedAt: time.Now()}
	a.setTakenUntil(c.TakenUntil)
	return a
}

// TakenUntil returns when the claim runs out, on the local clock.
func (a *activeRun) TakenUntil() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.takenUntil
}

// setTakenUntil records a takenUntil from the Queue (on its clock).
func (a *activeRun) setTakenUntil(t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.takenUntil = a.skew.Local(t)
}

// runClaim executes one claimed run and resolves it. It returns the
// run's clean-up (its journal record and run directory go), which nothing
// of the resolution waits for: the caller frees the run's capacity slot
// first.
func (w *Worker) runClaim(ctx context.Context, ar *activeRun) (cleanUp func()) {
	taskID, runID := ar.claim.Status.TaskID, ar.claim.RunID
	log := w.logger().With("taskId", taskID, "runId", runID)
	log.Info("claimed task", "takenUntil", ar.claim.TakenUntil)
	defer w.Metrics.TaskRunning()()
	if off := ar.skew.Offset(); off != 0 {
		log.Warn("this machine's clock differs from the Queue's; takenUntil is corrected for it", "queueClockAhead", off.String())
	}

	qc := *w.client()
	qc.Credentials = ar.creds.Get
	queue := qc.Queue()

	// Keep the claim alive from now until the run is resolved.
	reclaimCtx, stopReclaim := context.WithCancel(ctx)
	reclaimDone := make(chan struct{})
	go func() {
		defer close(reclaimDone)
		w.reclaimLoop(reclaimCtx, queue, ar, log)
	}()
	defer func() { stopReclaim(); <-reclaimDone }()
	// The run directory and the journal record go after the resolution
	// is reported: nothing in them is needed for that. The record goes
	// only when the resolution was reported, or the Queue took the run
	// back; else (a shutdown cut the resolution short) the next start
	// resolves the run from it.
	drop := false
	cleanUp = func() {
		if drop {
			ar.record.drop()
		}
		// Reused only by a run that is over for good; one left to the
		// next start's recovery is removed.
		w.spares.release(w.runDir(ar), drop, log)
	}

	out, err := w.execute(ctx, queue, ar, log)
	if err != nil {
		// The worker host failed before the task could run (task
		// directory, log file): the task is not at fault.
		log.Error("cannot run task", "error", err)
		out = taskrun.Outcome{Resolution: task.Resolution{State: task.Exception, Reason: task.ReasonInternalError}, ExitCode: -1}
	}
	if !out.Reported() || ar.ctl.Cancelled() {
		log.Info("run was taken back by the Queue; not reporting")
		drop = true
		return cleanUp
	}
	rctx, cancel, res := afterCut(ctx, out.Resolution)
	defer cancel()
	if ar.resolving != nil {
		ar.resolving()
	}
	w.resolve(rctx, queue, ar, res, log)
	drop = rctx.Err() == nil
	return cleanUp
}

// runDir is the directory of a run: <tasksDir>/<taskId>-<runId>, holding
// the task directory and the log; runClaim removes it.
func (w *Worker) runDir(ar *activeRun) string {
	return filepath.Join(w.Config.TasksDir, ar.claim.Status.TaskID+"-"+strconv.Itoa(ar.claim.RunID))
}

// execute prepares the run's directories and log, then runs it.
func (w *Worker) execute(ctx context.Context, queue *taskcluster.Queue, ar *activeRun, log *slog.Logger) (taskrun.Outcome, error) {
	taskID, runID := ar.claim.Status.TaskID, ar.claim.RunID
	runDir := w.runDir(ar)
	taskDir := filepath.Join(runDir, taskDirName)
	logPath := filepath.Join(runDir, logFileName)
	lf, err := w.spares.makeRunDir(runDir) // rundir.go
	if err != nil {
		return taskrun.Outcome{}, err
	}
	defer lf.Close()
	recordRun(w.jrnl, ar, runDir, logPath, recordDelay, log)

	tc := &task.Context{
		TaskID:     taskID,
		RunID:      runID,
		Definition: ar.claim.Task,
		Worker:     w.Runner.Info,
		TaskDir:    taskDir,
		Log:        task.NewLog(lf),
		LogPath:    logPath,
		Artifacts: &queueSink{queue: queue, taskID: taskID, runID: runID,
			storageType: w.Config.ArtifactUpload, tmpDir: runDir, metrics: w.Metrics, log: log,
			bg: ctx, deadline: ar.claim.Task.Deadline, created: ar.record.noteCreated},
		Credentials: ar.creds.Get,
		Queue:       taskcluster.RunQueue{Client: queue.Client()},
		// Roles are expanded with the worker's own credentials, as
		// generic-worker and docker-worker do.
		ScopeExpander: w.client().Auth(),
		Logger:        log,
		Started:       time.Now(),
	}
	sink := tc.Artifacts.(*queueSink) // plugins may wrap tc.Artifacts
	out := w.Runner.Run(ctx, tc, ar.ctl)
	// The task log is created early (plugins/tasklog's Prepare); a run
	// that ended without publishing it still gets its content uploaded,
	// also a run the shutdown deadline cut (its ctx cancelled), briefly.
	lctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), cutLogTimeout)
		defer cancel()
	}
	sink.publishLeftovers(lctx)
	return out, nil
}

// reclaimDelay is how long to wait before reclaiming a claim that is valid
// for remaining: margin before takenUntil, or half-way when the margin is
// more than half of what remains, so that short claim timeouts (tests,
// small deployments) still leave time to retry.
func reclaimDelay(remaining, margin time.Duration) time.Duration {
	return max(remaining-margin, remaining/2, 0)
}

// reclaimLoop reclaims the run ahead of takenUntil until ctx ends. A 409
// answer (task cancelled, deadline exceeded, claim taken over) cancels the
// run. Transient failures are retried until takenUntil has passed; then the
// claim is lost and the run is cancelled too.
func (w *Worker) reclaimLoop(ctx context.Context, queue *taskcluster.Queue, ar *activeRun, log *slog.Logger) {
	margin := time.Duration(w.Config.ReclaimMargin) * time.Second
	retry := newBackoff()
	var wait time.Duration
	for {
		until := ar.TakenUntil()
		wait = reclaimDelay(time.Until(until), margin)
		if !sleepCtx(ctx, wait) {
			return
		}
		for {
			attemptCtx, cancel := context.WithDeadline(ctx, ar.TakenUntil())
			started := time.Now()
			resp, err := boundedQueue(queue, ar.TakenUntil()).ReclaimTask(attemptCtx, ar.claim.Status.TaskID, ar.claim.RunID)
			cancel()
			w.observeReclaim(started, err) // telemetry.go
			if err == nil {
				ar.creds.Set(resp.Credentials)
				ar.setTakenUntil(resp.TakenUntil)
				ar.record.update(func(r *journal.Record) { r.TakenUntil, r.Credentials = resp.TakenUntil, resp.Credentials })
				retry.reset()
				w.outage.succeeded("reclaimTask")
				log.Debug("reclaimed", "takenUntil", resp.TakenUntil, "duration", time.Since(started))
				break
			}
			if ctx.Err() != nil {
				return
			}
			if taskcluster.StatusCode(err) == 409 {
				log.Warn("reclaimTask answered 409: the Queue no longer has this run running here; stopping the task", "error", err)
				ar.ctl.Cancel()
				return
			}
			if !time.Now().Before(ar.TakenUntil()) {
				log.Error("claim expired before it could be renewed; stopping the task", "error", err)
				ar.ctl.Cancel()
				return
			}
			d := min(retry.next(), time.Until(ar.TakenUntil())/2)
			w.outage.failed(log, "reclaimTask", err)
			log.Debug("reclaimTask failed; retrying", "error", err, "retryIn", d)
			if !sleepCtx(ctx, d) {
				return
			}
		}
	}
}

// resolve reports the run's resolution, retrying transient failures until
// the claim expires (the reclaim loop keeps it alive meanwhile).
func (w *Worker) resolve(ctx context.Context, queue *taskcluster.Queue, ar *activeRun, res task.Resolution, log *slog.Logger) {
	taskID, runID := ar.claim.Status.TaskID, ar.claim.RunID
	retry := newBackoff()
	for {
		attemptCtx, cancel := context.WithDeadline(ctx, ar.TakenUntil())
		log.Debug("reporting resolution", "resolution", res.String())
		started := time.Now()
		err := report(attemptCtx, boundedQueue(queue, ar.TakenUntil()), taskID, runID, res)
		cancel()
		if isAuthError(err) && w.resolveDespiteAuthError(ctx, ar, res, err, log) {
			err = nil
		}
		if err == nil {
			w.resolved.Add(1)
			w.outage.succeeded("resolve")
			w.observeResolved(ar, res) // telemetry.go
			log.Info("resolved", "resolution", res.String(), "runDuration", time.Since(ar.claimedAt), "reportDuration", time.Since(started))
			return
		}
		code := taskcluster.StatusCode(err)
		switch {
		case code == 409:
			log.Warn("the Queue refused the resolution: the run is no longer running here", "resolution", res.String(), "error", err)
			return
		case code >= 400 && code < 500 && code != 408 && code != 429:
			log.Error("the Queue rejected the resolution; the run is left to expire", "taskId", taskID, "runId", runID, "resolution", res.String(), "error", err)
			return
		case ar.ctl.Cancelled():
			return
		case !time.Now().Before(ar.TakenUntil()):
			log.Error("could not resolve the run before its claim expired; the Queue will resolve it claim-expired", "resolution", res.String(), "error", err)
			return
		}
		d := min(retry.next(), time.Until(ar.TakenUntil())/2)
		w.outage.failed(log, "resolve", err)
		log.Debug("resolving failed; retrying", "resolution", res.String(), "error", err, "retryIn", d)
		if !sleepCtx(ctx, d) {
			return
		}
	}
}

// backoff is exponential backoff with full jitter for the loop-level
// retries (claimWork, reclaim, resolution); per-call HTTP retries are the
// client's.
type backoff struct{ n int }

func newBackoff() *backoff { return &backoff{} }
func (b *backoff) reset()  { b.n = 0 }
func (b *backoff) next() time.Duration {
	d := time.Second << min(b.n, 5) // 1s .. 32s
	b.n++
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
