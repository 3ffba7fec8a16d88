package worker

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/workergen/workergen/task"
)

// cutResolveTimeout is how long runs get, after the shutdown deadline cut
// their uploads, to resolve exception/worker-shutdown before Work returns
// regardless. A run still unresolved then keeps its journal record, and
// the next start of the worker resolves it.
const cutResolveTimeout = 4 * time.Second

// cutLogTimeout is how long a run the shutdown deadline cut gets, of
// cutResolveTimeout, to upload its task log to the artifact created when
// the run started (which would otherwise stay without content) before it
// resolves.
const cutLogTimeout = time.Second

// shutdownState is the worker's shutdown: requested once, with a deadline
// that a later, more urgent request may bring forward.
type shutdownState struct {
	mu        sync.Mutex
	requested bool
	deadline  time.Time
	loop      *claimLoop // the running Work's loop, nil outside Work
	timer     *time.Timer
}

// Shutdown makes the worker stop: no new claims from now on; the running
// tasks may finish until the deadline, which is now plus
// cfg.ShutdownGracePeriod seconds when finishTasks is true and now
// otherwise. At the deadline every running task is killed, uploads still in
// progress are cut, and each run is resolved exception/worker-shutdown with
// what was uploaded by then (its task log gets cutLogTimeout to upload); Work returns at most cutResolveTimeout later
// (runs it could not resolve are resolved by the next start, from the
// journal). why starts the log line, written at once, e.g. "SIGTERM
// received" gives "SIGTERM received: no new claims; 2 tasks running; exit
// by 14:03:27". Shutdown may be called any number of times, from any
// goroutine, also before Work: a later call can only bring the deadline
// forward. It returns the deadline.
func (w *Worker) Shutdown(why string, finishTasks bool) time.Time {
	sd := &w.shutdown
	sd.mu.Lock()
	defer sd.mu.Unlock()
	grace := time.Duration(0)
	if finishTasks {
		grace = time.Duration(w.Config.ShutdownGracePeriod) * time.Second
	}
	deadline := time.Now().Add(grace)
	running := 0
	if sd.loop != nil {
		running = sd.loop.unresolved()
	}
	if sd.requested && !deadline.Before(sd.deadline) {
		w.logger().Info(fmt.Sprintf("%s: already shutting down; %d tasks running; exit by %s", why, running, sd.deadline.Format(time.TimeOnly)))
		return sd.deadline
	}
	sd.requested, sd.deadline = true, deadline
	msg := fmt.Sprintf("%s: no new claims; %d tasks running; exit by %s", why, running, deadline.Format(time.TimeOnly))
	if w.claiming.Load() {
		// Not cancelled: a task the Queue claims for us meanwhile would
		// otherwise stay claimed, unseen, until its takenUntil.
		msg += "; waiting for the claimWork in flight (the Queue answers within about 20 s)"
	}
	w.logger().Info(msg)
	sd.arm()
	return deadline
}

// arm stops the loop's claims and sets the cut for the deadline. Called
// with mu held.
func (sd *shutdownState) arm() {
	l := sd.loop
	if l == nil || !sd.requested {
		return
	}
	l.stopClaims()
	if sd.timer != nil {
		sd.timer.Stop()
	}
	sd.timer = time.AfterFunc(time.Until(sd.deadline), l.cut)
}

// attach makes Shutdown act on l (and applies a Shutdown that came before
// Work); detach undoes it when Work ends.
func (sd *shutdownState) attach(l *claimLoop) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	sd.loop = l
	sd.arm()
}

func (sd *shutdownState) detach() {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	sd.loop = nil
	if sd.timer != nil {
		sd.timer.Stop()
	}
}

// stopRunningTasks stops every task of the running Work now (they resolve
// exception/worker-shutdown; their uploads go on until the shutdown
// deadline).
func (w *Worker) stopRunningTasks() {
	sd := &w.shutdown
	sd.mu.Lock()
	l := sd.loop
	sd.mu.Unlock()
	if l == nil {
		return
	}
	l.mu.Lock()
	runs := make([]*activeRun, 0, len(l.active))
	for ar := range l.active {
		runs = append(runs, ar)
	}
	l.mu.Unlock()
	for _, ar := range runs {
		ar.ctl.Shutdown()
	}
}

// cutState is the part of a claimLoop that the shutdown deadline acts on.
type cutState struct {
	stopClaims context.CancelFunc // cancels the loop's ctx: no new claims
	cutRuns    context.CancelFunc // cancels the runs' ctx: uploads stop
	cutDone    chan struct{}      // closed by cut
	cutOnce    sync.Once
	wasCut     atomic.Bool
}

// cut is the shutdown deadline: kill every running task and cancel the
// runs' context (uploads in progress stop); runClaim then resolves each
// run exception/worker-shutdown.
func (l *claimLoop) cut() {
	l.cutOnce.Do(func() {
		l.wasCut.Store(true)
		l.mu.Lock()
		runs := make([]*activeRun, 0, len(l.active))
		for ar := range l.active {
			runs = append(runs, ar)
		}
		l.mu.Unlock()
		if len(runs) > 0 {
			l.w.logger().Warn("shutdown deadline reached: killing running tasks and cutting their uploads", "running", len(runs))
		}
		// The runs' context first: a run the kill ends at once must find
		// it cancelled (afterCut), or it would resolve with a context the
		// cut cancels mid-report.
		l.cutRuns()
		for _, ar := range runs {
			ar.ctl.Shutdown()
		}
		close(l.cutDone)
	})
}

// afterCut adjusts a run that the shutdown deadline cut: its outcome is
// exception/worker-shutdown whatever the cut stages made of it, and it
// gets a fresh, short context to resolve with.
func afterCut(ctx context.Context, res task.Resolution) (context.Context, context.CancelFunc, task.Resolution) {
	if ctx.Err() == nil {
		return ctx, func() {}, res
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cutResolveTimeout-cutLogTimeout-time.Second/2)
	return rctx, cancel, task.Resolution{State: task.Exception, Reason: task.ReasonWorkerShutdown}
}

// shutdownOnSignals makes SIGTERM and SIGINT shut w down (Shutdown with
// the grace period), logged the moment each arrives; a second signal is
// logged too and keeps the first deadline. It returns the function that
// stops listening.
func shutdownOnSignals(w *Worker) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				w.setReason(StopCancelled)
				w.Shutdown(signalName(sig)+" received", true)
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}
