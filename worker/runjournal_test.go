package worker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/journal"
)

func testRunRecord(t *testing.T, delay time.Duration) (*journal.Journal, *runRecord, string) {
	t.Helper()
	j, err := journal.Open(filepath.Join(t.TempDir(), journalDirName))
	require.NoError(t, err)
	id := NewSlugID()
	claim := taskcluster.TaskClaim{RunID: 0, TakenUntil: time.Now().Add(time.Hour)}
	claim.Status.TaskID = id
	ar := newActiveRun(claim, new(taskcluster.ClockSkew))
	rr := recordRun(j, ar, "/run/dir", "/run/dir/live_backing.log", delay, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return j, rr, filepath.Join(j.Dir, id+"-0.json")
}

// TestRunRecordWrittenAtFirstHandleReport: a run's journal record is first
// written, durably and together with the handles, at the engine's first
// report (which comes before anything of the task runs); not before, so a
// trivial task costs one durable write; and it is removed when dropped.
func TestRunRecordWrittenAtFirstHandleReport(t *testing.T) {
	j, rr, path := testRunRecord(t, time.Hour)
	assert.NoFileExists(t, path, "nothing is written before the first report")
	rr.update(func(r *journal.Record) { r.Handles = engines.Handles{Cgroup: "/sys/fs/cgroup/x"} })
	recs, bad, err := j.List()
	require.NoError(t, err)
	require.Empty(t, bad)
	require.Len(t, recs, 1)
	assert.Equal(t, "/sys/fs/cgroup/x", recs[0].Handles.Cgroup)
	assert.Equal(t, "/run/dir", recs[0].RunDir)
	rr.drop()
	assert.NoFileExists(t, path)
}

// TestRunRecordNotWrittenForRunEndedBeforeItsSandbox: a run that ends
// before its sandbox (say, a malformed payload) within recordDelay leaves
// no record behind and costs no journal write; nothing is written after
// the drop either.
func TestRunRecordNotWrittenForRunEndedBeforeItsSandbox(t *testing.T) {
	j, rr, path := testRunRecord(t, time.Hour)
	rr.drop()
	rr.update(func(*journal.Record) {})
	assert.NoFileExists(t, path)
	entries, err := os.ReadDir(j.Dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// TestRunRecordWrittenDuringLongPreparation: a run still preparing after
// recordDelay (downloads, image pulls) has its record written anyway, so a
// worker that dies then leaves the run for the next start to resolve.
func TestRunRecordWrittenDuringLongPreparation(t *testing.T) {
	j, rr, path := testRunRecord(t, time.Millisecond)
	require.Eventually(t, func() bool { _, err := os.Stat(path); return err == nil }, time.Minute, 5*time.Millisecond)
	recs, _, err := j.List()
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.True(t, recs[0].Handles.IsZero())
	rr.drop()
	assert.NoFileExists(t, path)
}

// TestWorkRecordsRunBeforeSandboxStarts: through Work, with an engine that
// reports no handles, the run's record is in the journal when the engine's
// Start is called, and gone once Work returned.
func TestWorkRecordsRunBeforeSandboxStarts(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{"output": "hi\n"}`, 0)
	w, eng := env.worker(1, 1)
	var atStart []*journal.Record
	eng.onStart = func(tc *task.Context) {
		j := &journal.Journal{Dir: filepath.Join(w.Config.TasksDir, journalDirName)}
		recs, _, err := j.List()
		assert.NoError(t, err)
		atStart = recs
	}
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "completed", runState(env.status(id), 0))
	require.Len(t, atStart, 1, "the record is in the journal when the sandbox starts")
	assert.Equal(t, id, atStart[0].TaskID)
	entries, err := os.ReadDir(filepath.Join(w.Config.TasksDir, journalDirName))
	require.NoError(t, err)
	assert.Empty(t, entries, "the record is removed after the resolution")
	assert.NoDirExists(t, filepath.Join(w.Config.TasksDir, id+"-0"), "so is the run directory")
}
