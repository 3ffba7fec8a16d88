package worker

import (
	"context"
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
// and leaves other files in tasksDir alone.
func TestRecoveryResolvesJournaledRun(t *testing.T) {
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
	j, err := w.openJournal()
	require.NoError(t, err)
	require.NoError(t, j.Put(&journal.Record{TaskID: id, RunID: 0, TakenUntil: claim.TakenUntil, RunDir: runDir, LogPath: logPath,
		Credentials: claim.Credentials, Expires: claim.Task.Expires}))

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
	recs, _, err := j.List()
	require.NoError(t, err)
	assert.Empty(t, recs)
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
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, w.Work(ctx))
	assert.NoDirExists(t, runDir)
	recs, _, err := j.List()
	require.NoError(t, err)
	assert.Empty(t, recs)
}

// TestAttemptTimeoutFitsThreeAttempts: a call near the claim's end gets a
// third of what is left per attempt, within bounds.
func TestAttemptTimeoutFitsThreeAttempts(t *testing.T) {
	assert.Equal(t, 40*time.Second, attemptTimeout(120*time.Second), "default reclaimMargin")
	assert.Equal(t, taskcluster.DefaultAttemptTimeout, attemptTimeout(time.Hour))
	assert.Equal(t, minAttemptTimeout, attemptTimeout(time.Second))
}
