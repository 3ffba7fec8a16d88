package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/journal"
)

// recoveryLogArtifact is the name the task log is uploaded under when a
// run is recovered: the tasklog plugin's default backing log.
const recoveryLogArtifact = "public/logs/live_backing.log"

// recoverStepTimeout bounds each Queue call and each reap of recovery, so
// that a recovery that cannot finish never keeps the worker from claiming.
const recoverStepTimeout = 30 * time.Second

// recoverRuns runs before the first claimWork: for every run an earlier
// process of this worker left in the journal it kills what is left of the
// run's sandbox, uploads the task log as far as it was written, resolves
// the run exception/worker-shutdown while its claim is valid (so the Queue
// schedules the next run at once instead of after claim-expired), removes
// the run's directory and drops the record. Then it removes task
// directories no record names (left by a worker that died before writing
// one). Every step is logged; failures are logged as errors (an operator
// or worker-runner's error report sees them) and never stop the worker.
// It returns the open journal, or nil when there is none (then runs are
// not journaled; logged).
func (w *Worker) recoverRuns(ctx context.Context) *journal.Journal {
	// A shutdown during start-up does not stop recovery: each step is
	// bounded by recoverStepTimeout.
	ctx = context.WithoutCancel(ctx)
	log := w.logger()
	j, err := w.openJournal()
	if err != nil {
		log.Error("run journal unusable; runs will not be recoverable after a crash", "error", err)
		return nil
	}
	recs, bad, err := j.List()
	if err != nil {
		log.Error("reading the run journal", "error", err)
	}
	for _, d := range bad {
		if d.OtherCopyUsed {
			log.Warn("damaged copy in the run journal", "file", d.File, "error", d)
		} else {
			log.Error("unreadable run journal record left in place", "file", d.File, "error", d)
		}
	}
	start := time.Now()
	known := map[string]bool{}
	for _, rec := range recs {
		known[filepath.Base(rec.RunDir)] = true
		w.recoverRun(ctx, j, rec)
	}
	w.removeLeftoverRunDirs(known)
	if len(recs) > 0 {
		log.Info("recovery finished", "runs", len(recs), "took", time.Since(start))
	}
	return j
}

// recoverRun recovers one run; see recoverRuns.
func (w *Worker) recoverRun(ctx context.Context, j *journal.Journal, rec *journal.Record) {
	log := w.logger().With("taskId", rec.TaskID, "runId", rec.RunID)
	log.Warn("recovering a run left by an earlier worker process", "pid", rec.PID, "takenUntil", rec.TakenUntil, "handles", rec.Handles)
	clean := true
	if !rec.Handles.IsZero() {
		if r, ok := w.Runner.Engine.(engines.Reaper); ok {
			rctx, cancel := context.WithTimeout(ctx, recoverStepTimeout)
			err := r.Reap(rctx, rec.Handles)
			cancel()
			if err != nil {
				clean = false
				log.Error("recovery: could not kill the run's sandbox", "handles", rec.Handles, "error", err)
			} else {
				log.Info("recovery: killed what was left of the run's sandbox", "handles", rec.Handles)
			}
		} else {
			log.Warn("recovery: the engine cannot reap sandboxes of an earlier process", "handles", rec.Handles)
		}
	}
	if !w.resolveRecovered(ctx, rec, log) {
		clean = false
	}
	if rec.RunDir != "" {
		if err := removeTree(rec.RunDir); err != nil {
			clean = false
			log.Error("recovery: could not remove the run directory", "dir", rec.RunDir, "error", err)
		} else {
			log.Info("recovery: removed the run directory", "dir", rec.RunDir)
		}
	}
	if !clean {
		// Keep the record: the next start tries again.
		return
	}
	if err := j.Remove(rec.TaskID, rec.RunID); err != nil {
		log.Error("recovery: could not drop the journal record", "error", err)
	}
}

// resolveRecovered uploads the run's log and resolves it
// exception/worker-shutdown, with the run's task credentials and then the
// worker's own. A claim that has expired is left to the Queue
// (claim-expired). It returns false when the run may still be resolved
// later (the call failed while the claim is valid).
func (w *Worker) resolveRecovered(ctx context.Context, rec *journal.Record, log *slog.Logger) bool {
	c := *w.client()
	if !time.Now().Before(c.Skew.Local(rec.TakenUntil)) {
		log.Warn("recovery: the run's claim has expired; the Queue resolves it claim-expired", "takenUntil", rec.TakenUntil)
		return true
	}
	creds := rec.Credentials
	c.Credentials = func() *taskcluster.Credentials { return &creds }
	c.MaxElapsedTime = recoverStepTimeout
	queue := c.Queue()
	w.uploadRecoveredLog(ctx, queue, rec, log)
	rctx, cancel := context.WithTimeout(ctx, recoverStepTimeout)
	defer cancel()
	_, err := queue.ReportException(rctx, rec.TaskID, rec.RunID, string(task.ReasonWorkerShutdown))
	if isAuthError(err) {
		log.Warn("recovery: the run's task credentials were refused; resolving with the worker's own", "error", err)
		_, err = w.client().Queue().ReportException(rctx, rec.TaskID, rec.RunID, string(task.ReasonWorkerShutdown))
	}
	switch {
	case err == nil:
		w.resolved.Add(1)
		log.Info("recovery: resolved the run", "resolution", "exception/worker-shutdown")
	case taskcluster.StatusCode(err) == 409:
		log.Info("recovery: the run was already resolved or taken back by the Queue", "error", err)
	default:
		log.Error("recovery: could not resolve the run; keeping its record for the next start (else the Queue resolves it claim-expired)", "error", err)
		return false
	}
	return true
}

// uploadRecoveredLog uploads the task log as far as it was written.
func (w *Worker) uploadRecoveredLog(ctx context.Context, queue *taskcluster.Queue, rec *journal.Record, log *slog.Logger) {
	if rec.LogPath == "" {
		return
	}
	fi, err := os.Stat(rec.LogPath)
	if err != nil {
		log.Warn("recovery: no task log to upload", "error", err)
		return
	}
	expires := rec.Expires
	if expires.IsZero() {
		expires = time.Now().Add(24 * time.Hour)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(rec.RunDir), ".recover-")
	if err != nil {
		log.Warn("recovery: cannot upload the task log", "error", err)
		return
	}
	defer os.RemoveAll(tmp)
	// The log is created without contentLength, as the run created it
	// ahead of its content (queueSink.PrepareArtifact): the request is the
	// same, so the Queue accepts it again for an artifact created but never
	// uploaded.
	sink := &queueSink{queue: queue, taskID: rec.TaskID, runID: rec.RunID, storageType: w.Config.ArtifactUpload, tmpDir: tmp,
		noLength: map[string]bool{recoveryLogArtifact: true}}
	uctx, cancel := context.WithTimeout(ctx, recoverStepTimeout)
	defer cancel()
	a := task.Artifact{
		Name: recoveryLogArtifact, Kind: task.ArtifactFile, Expires: expires,
		ContentType: "text/plain; charset=utf-8", ContentEncoding: "gzip", Size: fi.Size(),
		Open: func() (io.ReadCloser, error) { return os.Open(rec.LogPath) }, Path: rec.LogPath,
	}
	if o := rec.LogObject; o != nil && sink.storageType == taskcluster.StorageObject {
		sink.adopt(a, &taskcluster.PostArtifactResponse{StorageType: taskcluster.StorageObject,
			Name: o.Name, ProjectID: o.ProjectID, UploadID: o.UploadID, Expires: o.Expires, Credentials: o.Credentials})
	}
	err = sink.Publish(uctx, a)
	if taskcluster.StatusCode(err) == 409 {
		// The run was resolved before the record went (the worker died
		// in between, its log uploaded with the resolution), or the
		// Queue resolved it: artifacts are closed either way.
		log.Info("recovery: the run is already resolved, so the Queue takes no more artifacts for it; not uploading the task log", "error", err)
		return
	}
	if err != nil {
		log.Warn("recovery: could not upload the task log", "error", err)
		return
	}
	log.Info("recovery: uploaded the task log", "artifact", recoveryLogArtifact, "bytes", fi.Size())
}

// removeLeftoverRunDirs removes the run directories in cfg.TasksDir
// ("<taskId>-<runId>", see isRunDirName) that no journal record names: a
// worker died before writing the record. No run of this process exists
// yet. Other entries are left alone (tasksDir may be shared with other
// files).
func (w *Worker) removeLeftoverRunDirs(known map[string]bool) {
	entries, err := os.ReadDir(w.Config.TasksDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			w.logger().Error("recovery: listing leftover task directories", "error", err)
		}
		return
	}
	for _, e := range entries {
		if known[e.Name()] || !isRunDirName(e.Name()) {
			continue
		}
		path := filepath.Join(w.Config.TasksDir, e.Name())
		if err := removeTree(path); err != nil {
			w.logger().Error("recovery: removing a leftover task directory", "dir", path, "error", err)
			continue
		}
		w.logger().Warn("recovery: removed a leftover task directory", "dir", path)
	}
}

// isAuthError reports whether err is a 401 or 403 answer.
func isAuthError(err error) bool {
	code := taskcluster.StatusCode(err)
	return code == 401 || code == 403
}

// runDirName matches a run directory's name: a slugid (22 characters of
// URL-safe base64), "-", the runId.
var runDirName = regexp.MustCompile(`^[A-Za-z0-9_-]{22}-[0-9]{1,4}$|^\.recover-[0-9]+$`)

// isRunDirName reports whether name is a run directory (or a temporary
// directory of recovery) in cfg.TasksDir.
func isRunDirName(name string) bool { return runDirName.MatchString(name) }
