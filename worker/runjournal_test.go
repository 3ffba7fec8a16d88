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

func testRunRecord(t *testing.T, delay time.Duration) (*journal.Journal, *runRecord) {
	t.Helper()
	j, err := journal.Open(filepath.Join(t.TempDir(), journalDirName))
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	id := NewSlugID()
	claim := taskcluster.TaskClaim{RunID: 0, TakenUntil: time.Now().Add(time.Hour)}
	claim.Status.TaskID = id
	ar := newActiveRun(claim, new(taskcluster.ClockSkew))
	rr := recordRun(j, ar, "/run/dir", "/run/dir/live_backing.log", delay, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return j, rr
}

// onDisk is what a worker process starting now would find in the journal
// in dir: the records, read by a journal of its own, with nothing damaged.
// Safe to call from any goroutine (it asserts, it does not stop the test).
func onDisk(t *testing.T, dir string) []*journal.Record {
	t.Helper()
	recs, bad := readJournal(t, dir)
	assert.Empty(t, bad)
	return recs
}

// onDiskWhileWriting is onDisk while a worker may be writing to the
// journal: a copy read half-written reads as damaged (and its slot's
// other copy is used), as it would after a crash at that moment.
func onDiskWhileWriting(t *testing.T, dir string) []*journal.Record {
	t.Helper()
	recs, _ := readJournal(t, dir)
	return recs
}

func readJournal(t *testing.T, dir string) ([]*journal.Record, []journal.Damage) {
	t.Helper()
	j, err := journal.Open(dir)
	if !assert.NoError(t, err) {
		return nil, nil
	}
	defer j.Close()
	recs, bad, err := j.List()
	assert.NoError(t, err)
	return recs, bad
}

// TestRunRecordWrittenAtFirstHandleReport: a run's journal record is first
// written, durably and together with the handles, at the engine's first
// report (which comes before anything of the task runs); not before, so a
// trivial task costs one durable write; and it is removed when dropped.
func TestRunRecordWrittenAtFirstHandleReport(t *testing.T) {
	j, rr := testRunRecord(t, time.Hour)
	assert.Empty(t, onDisk(t, j.Dir()), "nothing is written before the first report")
	rr.update(func(r *journal.Record) { r.Handles = engines.Handles{Cgroup: "/sys/fs/cgroup/x"} })
	recs := onDisk(t, j.Dir())
	require.Len(t, recs, 1)
	assert.Equal(t, "/sys/fs/cgroup/x", recs[0].Handles.Cgroup)
	assert.Equal(t, "/run/dir", recs[0].RunDir)
	rr.drop()
	assert.Empty(t, onDisk(t, j.Dir()))
}

// TestRunRecordNotWrittenForRunEndedBeforeItsSandbox: a run that ends
// before its sandbox (say, a malformed payload) within recordDelay leaves
// no record behind and costs no journal write; nothing is written after
// the drop either.
func TestRunRecordNotWrittenForRunEndedBeforeItsSandbox(t *testing.T) {
	j, rr := testRunRecord(t, time.Hour)
	rr.drop()
	rr.update(func(*journal.Record) {})
	entries, err := os.ReadDir(j.Dir())
	require.NoError(t, err)
	assert.Empty(t, entries, "not even a slot was taken")
}

// TestRunRecordWrittenDuringLongPreparation: a run still preparing after
// recordDelay (downloads, image pulls) has its record written anyway, so a
// worker that dies then leaves the run for the next start to resolve.
func TestRunRecordWrittenDuringLongPreparation(t *testing.T) {
	j, rr := testRunRecord(t, time.Millisecond)
	require.Eventually(t, func() bool { return len(onDiskWhileWriting(t, j.Dir())) == 1 }, time.Minute, 5*time.Millisecond)
	recs := onDisk(t, j.Dir())
	assert.True(t, recs[0].Handles.IsZero())
	rr.drop()
	assert.Empty(t, onDisk(t, j.Dir()))
}

// TestWorkRecordsRunBeforeSandboxStarts: through Work, with an engine that
// reports no handles, the run's record is in the journal when the engine's
// Start is called, and gone once Work returned; the journal holds one
// slot file (capacity 1) and nothing else.
func TestWorkRecordsRunBeforeSandboxStarts(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{"output": "hi\n"}`, 0)
	w, eng := env.worker(1, 1)
	dir := filepath.Join(w.Config.TasksDir, journalDirName)
	var atStart []*journal.Record
	eng.onStart = func(tc *task.Context) { atStart = onDisk(t, dir) }
	require.NoError(t, w.Work(context.Background()))
	assert.Equal(t, "completed", runState(env.status(id), 0))
	require.Len(t, atStart, 1, "the record is in the journal when the sandbox starts")
	assert.Equal(t, id, atStart[0].TaskID)
	assert.Empty(t, onDisk(t, dir), "the record is removed after the resolution")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"lock", "slot-0", "slot-1"}, names, "capacity 1: a slot, and one for a run resolving while the next starts; the worker's lock")
	assert.NoDirExists(t, filepath.Join(w.Config.TasksDir, id+"-0"), "so is the run directory")
}
