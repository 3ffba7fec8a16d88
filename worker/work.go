package worker

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
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

	// ClaimPollInterval is the pause after a claimWork that returned no
	// task before asking again; zero means 1 second. (claimWork itself
	// long-polls, so this only matters for Queues that answer at once.)
	ClaimPollInterval time.Duration

	claimed  atomic.Int64
	resolved atomic.Int64

	clientOnce sync.Once
	skewed     *taskcluster.Client // Client with Skew set; see client
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
// was idle for cfg.IdleTimeout seconds. It returns only after every claimed
// run is resolved (or lost to the Queue).
func (w *Worker) Work(ctx context.Context) error {
	cfg := w.Config
	capacity := max(cfg.Capacity, 1)
	log := w.logger()
	runCtx := context.WithoutCancel(ctx)

	var (
		mu     sync.Mutex
		active = map[*activeRun]struct{}{}
		wg     sync.WaitGroup
		slot   = make(chan struct{}, capacity) // a run ended
	)
	lastBusy := time.Now()
	backoff := newBackoff()
	poll := w.ClaimPollInterval
	if poll <= 0 {
		poll = time.Second
	}
	limit := int64(cfg.NumberOfTasksToRun)

	running := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(active)
	}
	log.Info("worker started", "workerPoolId", cfg.WorkerPoolID, "workerGroup", cfg.WorkerGroup, "workerId", cfg.WorkerID, "capacity", capacity)

	// claimWork failures are retried here, with a warning each time, rather
	// than for minutes inside one call: an operator sees at once that the
	// Queue is unreachable.
	claimClient := *w.client()
	claimClient.MaxElapsedTime = claimRetryWindow
	var fatal error

claimLoop:
	for ctx.Err() == nil {
		if limit > 0 && w.claimed.Load() >= limit {
			log.Info("numberOfTasksToRun reached; no more claims", "numberOfTasksToRun", limit)
			break
		}
		free := capacity - running()
		if free <= 0 {
			select {
			case <-slot:
				lastBusy = time.Now() // a run just ended: idle time starts now
			case <-ctx.Done():
			}
			continue
		}
		if running() > 0 {
			lastBusy = time.Now()
		}
		var idleLeft time.Duration
		if cfg.IdleTimeout > 0 && running() == 0 {
			idleLeft = time.Duration(cfg.IdleTimeout)*time.Second - time.Since(lastBusy)
			if idleLeft <= 0 {
				log.Info("idle timeout reached", "idleTimeout", cfg.IdleTimeout)
				break
			}
		}
		n := free
		if limit > 0 {
			n = min(n, int(limit-w.claimed.Load()))
		}
		// A claimWork in flight is not cancelled by a shutdown or the idle
		// timeout: the Queue may already have claimed tasks for it, which
		// would otherwise sit claimed until their claims expire. It is
		// bounded by the long poll (20 s on Taskcluster) plus margin.
		claimCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimCallTimeout)
		resp, err := claimClient.Queue().ClaimWork(claimCtx, cfg.WorkerPoolID, &taskcluster.ClaimWorkRequest{
			WorkerGroup: cfg.WorkerGroup, WorkerID: cfg.WorkerID, Tasks: n,
		})
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if code := taskcluster.StatusCode(err); code >= 400 && code < 500 && code != 408 && code != 429 {
				// Bad credentials, missing scopes, a wrong workerPoolId:
				// retrying cannot help.
				fatal = fmt.Errorf("%w: claimWork for workerPoolId %q was refused (check credentials, their scopes queue:claim-work:%s and queue:worker-id:%s/%s, and rootUrl): %w",
					ErrConfig, cfg.WorkerPoolID, cfg.WorkerPoolID, cfg.WorkerGroup, cfg.WorkerID, err)
				log.Error("claimWork refused; stopping", "error", err)
				break claimLoop
			}
			wait := backoff.next()
			log.Warn("claimWork failed; backing off", "error", err, "retryIn", wait)
			if !sleepCtx(ctx, wait) {
				break
			}
			continue
		}
		backoff.reset()
		if len(resp.Tasks) == 0 {
			select {
			case <-ctx.Done():
				break claimLoop
			case <-slot:
				lastBusy = time.Now()
			case <-time.After(poll):
			}
			continue
		}
		lastBusy = time.Now()
		for _, claim := range resp.Tasks {
			ar := newActiveRun(claim, claimClient.Skew)
			mu.Lock()
			active[ar] = struct{}{}
			mu.Unlock()
			w.claimed.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.runClaim(runCtx, ar)
				mu.Lock()
				delete(active, ar)
				mu.Unlock()
				select {
				case slot <- struct{}{}:
				default:
				}
			}()
		}
	}

	// Stop: on a signal, running tasks get the grace period, then are told
	// to stop (worker-shutdown). Otherwise they simply finish.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if ctx.Err() != nil && running() > 0 {
		grace := time.Duration(cfg.ShutdownGracePeriod) * time.Second
		log.Info("shutting down: waiting for running tasks", "running", running(), "gracePeriod", grace)
		select {
		case <-done:
		case <-time.After(grace):
			mu.Lock()
			runs := make([]*activeRun, 0, len(active))
			for ar := range active {
				runs = append(runs, ar)
			}
			mu.Unlock()
			for _, ar := range runs {
				ar.ctl.Shutdown()
			}
		}
	}
	<-done
	log.Info("worker stopped", "claimed", w.claimed.Load(), "resolved", w.resolved.Load())
	return fatal
}

// claimRetryWindow bounds the HTTP-level retries of one claimWork call.
const claimRetryWindow = 20 * time.Second

// claimCallTimeout bounds one claimWork call, long poll included.
const claimCallTimeout = 90 * time.Second

// activeRun is one claimed run.
type activeRun struct {
	claim taskcluster.TaskClaim
	ctl   *Control
	creds *taskcluster.CredentialsHolder
	skew  *taskcluster.ClockSkew

	mu         sync.Mutex
	takenUntil time.Time // on the local clock
}

func newActiveRun(c taskcluster.TaskClaim, skew *taskcluster.ClockSkew) *activeRun {
	a := &activeRun{claim: c, ctl: NewControl(), creds: taskcluster.NewCredentialsHolder(c.Credentials), skew: skew}
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

// runClaim executes one claimed run and resolves it.
func (w *Worker) runClaim(ctx context.Context, ar *activeRun) {
	taskID, runID := ar.claim.Status.TaskID, ar.claim.RunID
	log := w.logger().With("taskId", taskID, "runId", runID)
	log.Info("claimed task", "takenUntil", ar.claim.TakenUntil)
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

	out, err := w.execute(ctx, queue, ar, log)
	if err != nil {
		// The worker host failed before the task could run (task
		// directory, log file): the task is not at fault.
		log.Error("cannot run task", "error", err)
		out = Outcome{Resolution: task.Resolution{State: task.Exception, Reason: task.ReasonInternalError}, ExitCode: -1}
	}
	if !out.Reported() || ar.ctl.stopped() == stopCancel {
		log.Info("run was taken back by the Queue; not reporting")
		return
	}
	w.resolve(ctx, queue, ar, out.Resolution, log)
}

// execute prepares the run's directories and log, then runs it.
func (w *Worker) execute(ctx context.Context, queue *taskcluster.Queue, ar *activeRun, log *slog.Logger) (Outcome, error) {
	taskID, runID := ar.claim.Status.TaskID, ar.claim.RunID
	runDir := filepath.Join(w.Config.TasksDir, taskID+"-"+strconv.Itoa(runID))
	taskDir := filepath.Join(runDir, "task")
	if err := os.RemoveAll(runDir); err != nil {
		return Outcome{}, err
	}
	defer os.RemoveAll(runDir)
	if err := os.MkdirAll(taskDir, 0o755); err != nil {
		return Outcome{}, fmt.Errorf("creating task directory: %w", err)
	}
	logPath := filepath.Join(runDir, "live_backing.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return Outcome{}, fmt.Errorf("creating task log: %w", err)
	}
	defer lf.Close()

	tc := &task.Context{
		TaskID:     taskID,
		RunID:      runID,
		Definition: ar.claim.Task,
		Worker:     w.Runner.Info,
		TaskDir:    taskDir,
		Log:        task.NewLog(lf),
		LogPath:    logPath,
		Artifacts: &queueSink{queue: queue, taskID: taskID, runID: runID,
			storageType: w.Config.ArtifactUpload, tmpDir: runDir},
		Credentials: ar.creds.Get,
		Queue:       taskcluster.RunQueue{Client: queue.Client()},
		Logger:      log,
		Started:     time.Now(),
	}
	return w.Runner.Run(ctx, tc, ar.ctl), nil
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
			resp, err := queue.ReclaimTask(attemptCtx, ar.claim.Status.TaskID, ar.claim.RunID)
			cancel()
			if err == nil {
				ar.creds.Set(resp.Credentials)
				ar.setTakenUntil(resp.TakenUntil)
				retry.reset()
				log.Debug("reclaimed", "takenUntil", resp.TakenUntil)
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
			log.Warn("reclaimTask failed; retrying", "error", err, "retryIn", d)
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
		var err error
		switch res.State {
		case task.Completed:
			_, err = queue.ReportCompleted(attemptCtx, taskID, runID)
		case task.Failed:
			_, err = queue.ReportFailed(attemptCtx, taskID, runID)
		default:
			_, err = queue.ReportException(attemptCtx, taskID, runID, string(res.Reason))
		}
		cancel()
		if err == nil {
			w.resolved.Add(1)
			log.Info("resolved", "resolution", res.String())
			return
		}
		code := taskcluster.StatusCode(err)
		switch {
		case code == 409:
			log.Warn("the Queue refused the resolution: the run is no longer running here", "resolution", res.String(), "error", err)
			return
		case code >= 400 && code < 500 && code != 408 && code != 429:
			log.Error("the Queue rejected the resolution", "resolution", res.String(), "error", err)
			return
		case ar.ctl.stopped() == stopCancel:
			return
		case !time.Now().Before(ar.TakenUntil()):
			log.Error("could not resolve the run before its claim expired; the Queue will resolve it claim-expired", "resolution", res.String(), "error", err)
			return
		}
		d := min(retry.next(), time.Until(ar.TakenUntil())/2)
		log.Warn("resolving failed; retrying", "resolution", res.String(), "error", err, "retryIn", d)
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

func cmdWork(b Build, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(b.Binary+" work", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "worker config `FILE` (JSON or YAML), merged over the profile's defaults")
	verbose := fs.Bool("v", false, "debug-level worker log")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s work --config FILE\n\nClaims tasks for workerPoolId from the Queue at rootUrl and runs them until SIGTERM/SIGINT,\nnumberOfTasksToRun or idleTimeout. Credentials come from the config or TASKCLUSTER_CLIENT_ID,\nTASKCLUSTER_ACCESS_TOKEN, TASKCLUSTER_CERTIFICATE; TASKCLUSTER_ROOT_URL overrides rootUrl.\n\nFlags:\n", b.Binary)
		fs.PrintDefaults()
	}
	pos, code, ok := parseCommand(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintf(stderr, "%s work: unexpected argument %q (the config is given with --config FILE)\n", b.Binary, pos[0])
		return ExitUsage
	}
	if *configPath == "" {
		fmt.Fprintf(stderr, "%s work: --config FILE is required (a worker config with rootUrl, credentials, workerPoolId, workerGroup and workerId; see README)\n", b.Binary)
		return ExitUsage
	}
	logger := newLogger(stderr, slog.LevelInfo, *verbose)
	cfg, err := LoadConfig(b, *configPath, os.Getenv)
	if err == nil {
		err = checkWorkConfig(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		return ExitUsage
	}
	if err := os.MkdirAll(cfg.TasksDir, 0o755); err != nil {
		fmt.Fprintf(stderr, "%s: tasksDir: %v\n", b.Binary, err)
		return ExitUsage
	}
	runner, code := startRunner(b, cfg, logger, stderr)
	if runner == nil {
		return code
	}
	defer runner.Close()
	client := &taskcluster.Client{
		RootURL:     cfg.RootURL,
		Credentials: taskcluster.StaticCredentials(cfg.Credentials),
		Logger:      logger,
		UserAgent:   b.Binary + "/" + version,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := &Worker{Runner: runner, Config: cfg, Client: client, Logger: logger}
	if err := w.Work(ctx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", b.Binary, err)
		if errors.Is(err, ErrConfig) {
			return ExitUsage
		}
		return ExitInternal
	}
	return 0
}

// checkWorkConfig checks what `work` needs beyond the schema.
func checkWorkConfig(cfg *Config) error {
	var missing []string
	if cfg.RootURL == "" {
		missing = append(missing, "config.rootUrl: required for work (or set TASKCLUSTER_ROOT_URL)")
	}
	if cfg.Credentials.ClientID == "" || cfg.Credentials.AccessToken == "" {
		missing = append(missing, "config.credentials: clientId and accessToken are required for work (or set TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN)")
	}
	if c := cfg.Credentials.Certificate; c != "" && !json.Valid([]byte(c)) {
		missing = append(missing, "config.credentials.certificate (or TASKCLUSTER_CERTIFICATE): not valid JSON; give the temporary credentials' certificate exactly as issued, or leave it empty for permanent credentials")
	}
	if !strings.Contains(cfg.WorkerPoolID, "/") {
		missing = append(missing, fmt.Sprintf("config.workerPoolId: %q must be <provisionerId>/<workerType>", cfg.WorkerPoolID))
	}
	if cfg.WorkerGroup == "" || cfg.WorkerID == "" {
		missing = append(missing, "config.workerGroup and config.workerId: required for work")
	}
	switch cfg.ArtifactUpload {
	case taskcluster.StorageS3, taskcluster.StorageObject:
	default:
		missing = append(missing, fmt.Sprintf("config.artifactUpload: %q must be s3 or object", cfg.ArtifactUpload))
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrConfig, strings.Join(missing, "\n  "))
	}
	return nil
}
