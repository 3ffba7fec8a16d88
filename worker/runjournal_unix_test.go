//go:build unix

package worker

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/task"
)

// TestWorkReusesJournalSlots: a worker of capacity 2 running 8 tasks,
// two at a time, records every run in the slots it reserved at start-up
// (two per unit of capacity: a run's record stays while its resolution is
// reported and the next run starts): the journal directory ends with the
// same files (same inodes) it had while the runs ran, fewer than the runs,
// and no record, and each run was in the journal when it started.
func TestWorkReusesJournalSlots(t *testing.T) {
	env := newQueueEnv(t, time.Minute)
	var ids []string
	for range 8 {
		ids = append(ids, env.createTask(`{"sleepMs": 20}`, 0))
	}
	w, eng := env.worker(2, 8)
	dir := filepath.Join(w.Config.TasksDir, journalDirName)
	var mu sync.Mutex
	slots := map[uint64]bool{}
	recorded := map[string]bool{}
	eng.onStart = func(tc *task.Context) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range onDiskWhileWriting(t, dir) { // the other run may be writing its record
			recorded[r.TaskID] = true
		}
		entries, err := os.ReadDir(dir)
		assert.NoError(t, err)
		for _, e := range entries {
			fi, err := e.Info()
			if assert.NoError(t, err) {
				slots[fi.Sys().(*syscall.Stat_t).Ino] = true
			}
		}
	}
	require.NoError(t, w.Work(context.Background()))
	for _, id := range ids {
		assert.Equal(t, "completed", runState(env.status(id), 0))
		assert.True(t, recorded[id], "run of %s recorded before its start", id)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, len(slots), "the slot files seen while the runs ran, and only they, are left")
	assert.GreaterOrEqual(t, len(entries), 4, "the four slots reserved at start")
	assert.Less(t, len(entries), len(ids), "runs reuse slots")
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		assert.True(t, slots[fi.Sys().(*syscall.Stat_t).Ino], e.Name())
	}
	assert.Empty(t, onDisk(t, dir))
}
