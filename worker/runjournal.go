package worker

import (
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/journal"
)

// journalDirName is the run journal's directory inside cfg.TasksDir (see
// package journal). Start-up recovery leaves it alone when it removes
// leftover task directories.
const journalDirName = ".journal"

// recordDelay is how long a run may prepare (payload checks, plugins'
// Prepare, the engine's sandbox builder: downloads, image pulls) before
// its journal record is written anyway, ahead of its sandbox's start.
const recordDelay = 50 * time.Millisecond

// runRecord is the journal record of one active run, kept up to date with
// the run's handles, takenUntil and credentials until the run is resolved.
//
// The record is first written when the run's sandbox is about to start:
// at the engine's first handle report, which comes before anything of the
// task runs (taskrun.Control.SetHandleSink), together with the handles
// that report names; or after recordDelay of preparation, whichever is
// first. So a trivial task costs one write where "record, then handles"
// cost two, the record is in the kernel before the sandbox starts (what
// recovery needs to reap it and resolve the run after this process dies)
// and on disk one background flush later (journal.Journal.Put), and a
// worker that dies during a long preparation still leaves the record for
// the next start to resolve the run. A run that dies in its first
// recordDelay, before any sandbox, leaves no record: it has nothing to
// reap, and the Queue resolves it claim-expired.
type runRecord struct {
	j   *journal.Journal
	log *slog.Logger

	mu      sync.Mutex
	rec     journal.Record
	written bool        // rec is in the journal
	dropped bool        // drop was called: nothing is written any more
	timer   *time.Timer // writes the record after recordDelay
	// logTimer writes the record again after logObjectDelay, with the
	// task log's object upload (noteCreated).
	logTimer *time.Timer
}

// logObjectDelay is how long after the task log's object artifact was
// created the record is written again to hold it, when it was written
// already (else its first write carries it): runs shorter than this never
// pay for the extra write; a worker that dies before it loses the log of
// that run only (recovery then creates the artifact afresh, which the Queue
// refuses for an object artifact).
const logObjectDelay = time.Second

// openJournal opens the worker's run journal (once per Work) with two
// slots per unit of the worker's capacity, so that recording a run creates
// no file. A slot that cannot be created is logged: runs then take
// the slots there are, or create one when they need it.
func (w *Worker) openJournal() (*journal.Journal, error) {
	j, err := journal.Open(filepath.Join(w.Config.TasksDir, journalDirName))
	if err != nil {
		return nil, err
	}
	// Twice the capacity: a run's record stays while its resolution is
	// reported, and the next run may start meanwhile (freeSlot).
	if err := j.Reserve(2 * max(w.Config.Capacity, 1)); err != nil {
		w.logger().Warn("cannot preallocate the run journal's slots", "error", err)
	}
	j.OnFlushError(func(path string, err error) {
		w.logger().Error("cannot flush a run record to disk; should the machine crash now, the run is left to the Queue (claim-expired) instead of being recovered",
			"file", path, "error", err)
	})
	return j, nil
}

// recordRun starts the run's record (written as runRecord says, delay
// being recordDelay) and makes the run's engine report its handles into
// it. With no journal (nil j) it does nothing and returns nil.
func recordRun(j *journal.Journal, ar *activeRun, runDir, logPath string, delay time.Duration, log *slog.Logger) *runRecord {
	if j == nil {
		return nil
	}
	rr := &runRecord{j: j, log: log, rec: journal.Record{
		TaskID: ar.claim.Status.TaskID, RunID: ar.claim.RunID, TakenUntil: ar.claim.TakenUntil,
		RunDir: runDir, LogPath: logPath, Credentials: *ar.creds.Get(), Expires: ar.claim.Task.Expires,
	}}
	rr.mu.Lock()
	rr.timer = time.AfterFunc(delay, func() { rr.update(func(*journal.Record) {}) })
	rr.mu.Unlock()
	ar.ctl.SetHandleSink(func(h engines.Handles) {
		rr.update(func(r *journal.Record) { r.Handles = h })
	})
	ar.record = rr
	return rr
}

// update changes the record and writes it (journal.Journal.Put). A journal that cannot
// be written is logged, not fatal: the run goes on, it just cannot be
// recovered should this process die.
func (rr *runRecord) update(change func(*journal.Record)) {
	if rr == nil {
		return
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	change(&rr.rec)
	if rr.dropped {
		return
	}
	rr.timer.Stop()
	if err := rr.j.Put(&rr.rec); err != nil {
		rr.log.Error("cannot write the run journal; this run cannot be recovered if the worker dies", "error", err)
		return
	}
	rr.written = true
}

// noteCreated is the run's queueSink.created hook: it keeps the task
// log's early object artifact in the record (see logObjectDelay).
func (rr *runRecord) noteCreated(name string, resp *taskcluster.PostArtifactResponse) {
	if rr == nil || name != recoveryLogArtifact || resp.StorageType != taskcluster.StorageObject {
		return
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.rec.LogObject = &journal.ObjectUpload{Name: resp.Name, ProjectID: resp.ProjectID, UploadID: resp.UploadID,
		Expires: resp.Expires, Credentials: resp.Credentials}
	if rr.written && !rr.dropped && rr.logTimer == nil {
		rr.logTimer = time.AfterFunc(logObjectDelay, func() { rr.update(func(*journal.Record) {}) })
	}
}

// drop removes the record: the run is resolved (or the Queue took it back)
// and its sandbox disposed.
func (rr *runRecord) drop() {
	if rr == nil {
		return
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.dropped = true
	rr.timer.Stop()
	if rr.logTimer != nil {
		rr.logTimer.Stop()
	}
	if !rr.written {
		return
	}
	if err := rr.j.Remove(rr.rec.TaskID, rr.rec.RunID); err != nil {
		rr.log.Error("cannot remove the run's journal record; the next start will resolve it again", "error", err)
	}
}
