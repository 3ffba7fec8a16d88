package journal_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/taskcluster/tcwire"
	"github.com/workergen/workergen/worker/journal"
)

func record(runID int) *journal.Record {
	return &journal.Record{
		TaskID: "fN1SbArXTPSVFNUvaOlinQ", RunID: runID, TakenUntil: time.Now().Add(20 * time.Minute).UTC().Truncate(time.Millisecond),
		RunDir: "/tasks/fN1SbArXTPSVFNUvaOlinQ-0", LogPath: "/tasks/fN1SbArXTPSVFNUvaOlinQ-0/live_backing.log",
		Credentials: tcwire.Credentials{ClientID: "task-client/x", AccessToken: "secret", Certificate: "{}"},
		Handles:     engines.Handles{Cgroup: "/sys/fs/cgroup/workergen-x", ProcessGroups: []int{42}},
	}
}

func TestPutListRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	j, err := journal.Open(dir)
	require.NoError(t, err)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "journal directory readable by the worker's user only")

	r0 := record(0)
	require.NoError(t, j.Put(r0))
	r0.Handles.ProcessGroups = append(r0.Handles.ProcessGroups, 43)
	require.NoError(t, j.Put(r0), "a later version replaces the record")
	require.NoError(t, j.Put(record(1)))
	fi, err = os.Stat(filepath.Join(dir, r0.Name()))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "records hold task credentials")

	// A crash between CreateTemp and rename leaves a temporary file; a
	// damaged record is reported, not fatal.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("{"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad-0.json"), []byte("{"), 0o600))

	recs, bad, err := j.List()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, []int{42, 43}, recs[0].Handles.ProcessGroups)
	assert.Equal(t, "secret", recs[0].Credentials.AccessToken)
	assert.True(t, recs[0].TakenUntil.Equal(r0.TakenUntil))
	assert.Equal(t, os.Getpid(), recs[0].PID)
	assert.Equal(t, []string{filepath.Join(dir, "bad-0.json")}, bad)
	assert.NoFileExists(t, filepath.Join(dir, ".tmp-123"))

	require.NoError(t, j.Remove(r0.TaskID, 0))
	require.NoError(t, j.Remove(r0.TaskID, 0), "removing twice is fine")
	recs, _, err = j.List()
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, 1, recs[0].RunID)
}

// BenchmarkRunJournal is the journal's cost per run: the first record
// (before the sandbox starts), one update with the sandbox's handles, and
// the removal when the run is resolved, each durable (fsync).
func BenchmarkRunJournal(b *testing.B) {
	j, err := journal.Open(b.TempDir())
	require.NoError(b, err)
	r := record(0)
	for b.Loop() {
		if err := j.Put(r); err != nil {
			b.Fatal(err)
		}
		r.Handles.ProcessGroups = []int{1234}
		if err := j.Put(r); err != nil {
			b.Fatal(err)
		}
		if err := j.Remove(r.TaskID, r.RunID); err != nil {
			b.Fatal(err)
		}
	}
}
