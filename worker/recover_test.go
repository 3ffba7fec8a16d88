package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/worker/journal"
)

// TestRecoveryResolvesJournaledRun plays a worker process that died during
// a run: the run is claimed, its record and directory (with a partial
// task log) are on disk. The next Work resolves the run
// exception/worker-shutdown before claiming, uploads the log, removes the
// run directory, a leftover run directory without record and the record,
// and leaves other files in tasksDir alone. The record is in a journal
// slot, or in a file of its own as an older worker wrote it ("legacy").
func TestRecoveryResolvesJournaledRun(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "slot", true: "legacy"}[legacy], func(t *testing.T) { testRecoveryResolvesJournaledRun(t, legacy) })
	}
}

func testRecoveryResolvesJournaledRun(t *testing.T, legacy bool) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{}`, 1)
	w, _ := env.worker(1, 0)
	resp, err := env.client.Queue().ClaimWork(context.Background(), testPool, &taskcluster.ClaimWorkRequest{WorkerGroup: "test-group", WorkerID: "w1", Tasks: 1})
	require.NoError(t, err)
	require.Len(t, resp.Tasks, 1)
	claim := resp.Tasks[0]

	tasksDir := w.Config.TasksDir
	runDir := filepath.Join(tasksDir, id+"-0")
	require.NoError(t, os.MkdirAll(filepath.Join(runDir, "task"), 0o755))
	logPath := filepath.Join(runDir, "live_backing.log")
	require.NoError(t, os.WriteFile(logPath, []byte("half a task log\n"), 0o644))
	stray := filepath.Join(tasksDir, NewSlugID()+"-3")
	require.NoError(t, os.MkdirAll(stray, 0o755))
	other := filepath.Join(tasksDir, "operator-notes.txt")
	require.NoError(t, os.WriteFile(other, nil, 0o644))
	rec := &journal.Record{TaskID: id, RunID: 0, TakenUntil: claim.TakenUntil, RunDir: runDir, LogPath: logPath,
		Credentials: claim.Credentials, Expires: claim.Task.Expires}
	jdir := filepath.Join(tasksDir, journalDirName)
	if legacy {
		data, err := json.Marshal(rec)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(jdir, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(jdir, rec.LegacyName()), data, 0o600))
	} else {
		j, err := w.openJournal()
		require.NoError(t, err)
		require.NoError(t, j.Put(rec))
		require.NoError(t, j.Close())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // recover, then stop at once: no claims
	require.NoError(t, w.Work(ctx))

	st := env.status(id)
	assert.Equal(t, "exception/worker-shutdown", runState(st, 0))
	assert.Equal(t, "pending", runState(st, 1), "the Queue retries at once, not after claim-expired")
	arts, err := env.server.Artifacts(id, 0)
	require.NoError(t, err)
	require.Len(t, arts, 1)
	assert.Equal(t, recoveryLogArtifact, arts[0].Name)
	assert.NoDirExists(t, runDir)
	assert.NoDirExists(t, stray)
	assert.FileExists(t, other)
	assert.Empty(t, onDisk(t, jdir))
	entries, err := os.ReadDir(jdir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"lock", "slot-0", "slot-1"}, names, "the legacy record file is removed; the slots (capacity 1, and one for a run resolving) and the worker's lock stay")
}

// TestRecoveryLeavesExpiredClaimToTheQueue: a record whose claim has
// expired is cleaned up without a resolution (the Queue resolves it
// claim-expired) and without error.
func TestRecoveryLeavesExpiredClaimToTheQueue(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	w, _ := env.worker(1, 0)
	runDir := filepath.Join(w.Config.TasksDir, NewSlugID()+"-0")
	require.NoError(t, os.MkdirAll(runDir, 0o755))
	j, err := w.openJournal()
	require.NoError(t, err)
	require.NoError(t, j.Put(&journal.Record{TaskID: filepath.Base(runDir)[:22], TakenUntil: time.Now().Add(-time.Minute), RunDir: runDir}))
	require.NoError(t, j.Close())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, w.Work(ctx))
	assert.NoDirExists(t, runDir)
	assert.Empty(t, onDisk(t, j.Dir()))
}

// TestAttemptTimeoutFitsThreeAttempts: a call near the claim's end gets a
// third of what is left per attempt, within bounds.
func TestAttemptTimeoutFitsThreeAttempts(t *testing.T) {
	assert.Equal(t, 40*time.Second, attemptTimeout(120*time.Second), "default reclaimMargin")
	assert.Equal(t, taskcluster.DefaultAttemptTimeout, attemptTimeout(time.Hour))
	assert.Equal(t, minAttemptTimeout, attemptTimeout(time.Second))
}

// slotHolding returns the path of the slot file in dir that holds a
// record of taskID.
func slotHolding(t *testing.T, dir, taskID string) string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "slot-*"))
	require.NoError(t, err)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		if bytes.Contains(b, []byte(taskID)) {
			return p
		}
	}
	t.Fatalf("no slot in %s holds a record of %s", dir, taskID)
	return ""
}

// TestRecoveryReadsTheUndamagedCopy: a record whose newest version was
// torn by the crash (here: bytes of its copy overwritten) is recovered
// from the version before it, and the damaged copy is logged with its
// file and copy.
func TestRecoveryReadsTheUndamagedCopy(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	w, _ := env.worker(1, 0)
	var logs lockedBuffer
	w.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	runDir := filepath.Join(w.Config.TasksDir, NewSlugID()+"-0")
	require.NoError(t, os.MkdirAll(runDir, 0o755))
	j, err := w.openJournal()
	require.NoError(t, err)
	rec := &journal.Record{TaskID: filepath.Base(runDir)[:22], TakenUntil: time.Now().Add(-time.Minute), RunDir: runDir}
	require.NoError(t, j.Put(rec)) // copy A
	rec.Handles.ProcessGroups = []int{1 << 30}
	require.NoError(t, j.Put(rec)) // copy B
	require.NoError(t, j.Close())
	slot := slotHolding(t, j.Dir(), rec.TaskID)
	f, err := os.OpenFile(slot, os.O_RDWR, 0)
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("torn"), fi.Size()/2+40)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, w.Work(ctx))
	assert.NoDirExists(t, runDir, "the run was recovered")
	assert.Contains(t, logs.String(), "recovering a run left by an earlier worker process")
	assert.NotContains(t, logs.String(), "handles.processGroups", "from copy A, which names no process group")
	assert.NotContains(t, logs.String(), "1073741824", "not from the torn copy B")
	assert.Regexp(t, `level=WARN msg="damaged copy in the run journal" file=\S+`+filepath.Base(slot)+` error=".*`+filepath.Base(slot)+`, copy B: checksum mismatch`, logs.String())
	assert.Empty(t, onDisk(t, j.Dir()))
}

// TestRecoveryOfARunResolvedBeforeTheRecordWent plays a worker process
// that died after the Queue accepted the run's resolution but before the
// journal record was dropped: recovery finds the run resolved, says so
// without warnings, and cleans up.
func TestRecoveryOfARunResolvedBeforeTheRecordWent(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	id := env.createTask(`{}`, 0)
	w, _ := env.worker(1, 0)
	var logs lockedBuffer
	w.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	resp, err := env.client.Queue().ClaimWork(context.Background(), testPool, &taskcluster.ClaimWorkRequest{WorkerGroup: "test-group", WorkerID: "w1", Tasks: 1})
	require.NoError(t, err)
	require.Len(t, resp.Tasks, 1)
	claim := resp.Tasks[0]
	tc := *env.client
	tc.Credentials = taskcluster.StaticCredentials(claim.Credentials)
	_, err = tc.Queue().ReportCompleted(context.Background(), id, 0)
	require.NoError(t, err)

	runDir := filepath.Join(w.Config.TasksDir, id+"-0")
	logPath := filepath.Join(runDir, "live_backing.log")
	require.NoError(t, os.MkdirAll(filepath.Join(runDir, "task"), 0o755))
	require.NoError(t, os.WriteFile(logPath, []byte("the whole task log\n"), 0o644))
	j, err := w.openJournal()
	require.NoError(t, err)
	require.NoError(t, j.Put(&journal.Record{TaskID: id, RunID: 0, TakenUntil: claim.TakenUntil, RunDir: runDir, LogPath: logPath,
		Credentials: claim.Credentials, Expires: claim.Task.Expires}))
	require.NoError(t, j.Close())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, w.Work(ctx))
	assert.Equal(t, "completed", runState(env.status(id), 0))
	assert.NoDirExists(t, runDir)
	assert.Empty(t, onDisk(t, j.Dir()))
	assert.NotContains(t, logs.String(), "level=WARN msg=\"recovery: could not upload the task log\"")
	assert.Contains(t, logs.String(), `level=INFO msg="recovery: the run is already resolved, so the Queue takes no more artifacts for it; not uploading the task log"`)
}
