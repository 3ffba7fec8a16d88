package worker

import (
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/worker/journal"
)

// journalDirName is the run journal's directory inside cfg.TasksDir (see
// package journal). Start-up recovery leaves it alone when it removes
// leftover task directories.
const journalDirName = ".journal"

// runRecord is the journal record of one active run, kept up to date with
// the run's handles, takenUntil and credentials until the run is resolved.
type runRecord struct {
	j   *journal.Journal
	log *slog.Logger

	mu  sync.Mutex
	rec journal.Record
}

// openJournal opens the worker's run journal (once per Work).
func (w *Worker) openJournal() (*journal.Journal, error) {
	return journal.Open(filepath.Join(w.Config.TasksDir, journalDirName))
}

// recordRun writes the run's first record, before its sandbox starts, and
// makes the run's engine report its handles into it. With no journal (nil
// j) it does nothing and returns nil.
func recordRun(j *journal.Journal, ar *activeRun, runDir, logPath string, log *slog.Logger) *runRecord {
	if j == nil {
		return nil
	}
	rr := &runRecord{j: j, log: log, rec: journal.Record{
		TaskID: ar.claim.Status.TaskID, RunID: ar.claim.RunID, TakenUntil: ar.claim.TakenUntil,
		RunDir: runDir, LogPath: logPath, Credentials: *ar.creds.Get(), Expires: ar.claim.Task.Expires,
	}}
	rr.update(func(*journal.Record) {})
	ar.ctl.SetHandleSink(func(h engines.Handles) {
		rr.update(func(r *journal.Record) { r.Handles = h })
	})
	ar.record = rr
	return rr
}

// update changes the record and writes it durably. A journal that cannot
// be written is logged, not fatal: the run goes on, it just cannot be
// recovered should this process die.
func (rr *runRecord) update(change func(*journal.Record)) {
	if rr == nil {
		return
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	change(&rr.rec)
	if err := rr.j.Put(&rr.rec); err != nil {
		rr.log.Error("cannot write the run journal; this run cannot be recovered if the worker dies", "error", err)
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
	if err := rr.j.Remove(rr.rec.TaskID, rr.rec.RunID); err != nil {
		rr.log.Error("cannot remove the run's journal record; the next start will resolve it again", "error", err)
	}
}
