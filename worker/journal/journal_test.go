package journal_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/taskcluster/tcwire"
	"github.com/workergen/workergen/worker/journal"
)

const testTaskID = "fN1SbArXTPSVFNUvaOlinQ"

func record(runID int) *journal.Record {
	return &journal.Record{
		TaskID: testTaskID, RunID: runID, TakenUntil: time.Now().Add(20 * time.Minute).UTC().Truncate(time.Millisecond),
		RunDir: "/tasks/fN1SbArXTPSVFNUvaOlinQ-0", LogPath: "/tasks/fN1SbArXTPSVFNUvaOlinQ-0/live_backing.log",
		Credentials: tcwire.Credentials{ClientID: "task-client/x", AccessToken: "secret", Certificate: "{}"},
		Handles:     engines.Handles{Cgroup: "/sys/fs/cgroup/workergen-x", ProcessGroups: []int{42}},
	}
}

func open(t testing.TB, dir string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// reopen is what the next worker process finds: the records and damage
// in dir, read by a journal of its own (closed again).
func reopen(t *testing.T, dir string) ([]*journal.Record, []journal.Damage) {
	t.Helper()
	j, err := journal.Open(dir)
	require.NoError(t, err)
	defer j.Close()
	recs, bad, err := j.List()
	require.NoError(t, err)
	return recs, bad
}

func TestPutListRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	j := open(t, dir)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "journal directory readable by the worker's user only")

	r0 := record(0)
	require.NoError(t, j.Put(r0))
	r0.Handles.ProcessGroups = append(r0.Handles.ProcessGroups, 43)
	require.NoError(t, j.Put(r0), "a later version replaces the record")
	require.NoError(t, j.Put(record(1)))
	for _, name := range []string{"slot-0", "slot-1"} {
		fi, err = os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "slots hold task credentials")
	}

	for _, j := range []*journal.Journal{j, open(t, dir)} { // this process's view, and the next one's
		recs, bad, err := j.List()
		require.NoError(t, err)
		assert.Empty(t, bad)
		require.Len(t, recs, 2)
		assert.Equal(t, []int{42, 43}, recs[0].Handles.ProcessGroups)
		assert.Equal(t, "secret", recs[0].Credentials.AccessToken)
		assert.True(t, recs[0].TakenUntil.Equal(r0.TakenUntil))
		assert.Equal(t, os.Getpid(), recs[0].PID)
		assert.Equal(t, 1, recs[1].RunID)
	}

	require.NoError(t, j.Remove(testTaskID, 0))
	require.NoError(t, j.Remove(testTaskID, 0), "removing twice is fine")
	recs, _, err := j.List()
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, 1, recs[0].RunID)
	recs, _ = reopen(t, dir)
	require.Len(t, recs, 1, "the free mark reached the file (unsynced, but written)")
	assert.Equal(t, 1, recs[0].RunID)
}

// copyAt returns the offset of copy c (0 = A, 1 = B) of a slot file and
// its sequence number (slot.go's layout).
func copyAt(t *testing.T, path string, c int) (off int64, seq uint64) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	off = int64(c) * int64(len(data)/2)
	return off, binary.LittleEndian.Uint64(data[off+8:])
}

// tear overwrites n bytes of copy c of the slot file at path from byte at
// of the copy, as a write a crash interrupted half-way would.
func tear(t *testing.T, path string, c int, at int64, n int) {
	t.Helper()
	off, _ := copyAt(t, path, c)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(strings.Repeat("\xa5", n)), off+at)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// TestTornWriteReadsTheOlderCopy: the versions of a record alternate
// between the slot's copies; when the newest copy is damaged (a write torn
// by a crash: payload or header), the next process reads the version
// before it from the other copy and says which copy was damaged; the next
// write goes over the damaged copy, and the slot reads clean again.
func TestTornWriteReadsTheOlderCopy(t *testing.T) {
	for _, c := range []struct {
		name   string
		at     int64
		reason string
	}{
		{"payload", 100, "checksum mismatch"},
		{"header", 0, "no copy header"},
		{"length", 16, "payload length"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			j := open(t, dir)
			require.NoError(t, j.Reserve(1))
			r := record(0)
			require.NoError(t, j.Put(r)) // copy A
			r.Handles.ProcessGroups = []int{42, 43}
			require.NoError(t, j.Put(r)) // copy B
			require.NoError(t, j.Close())
			slot := filepath.Join(dir, "slot-0")
			_, seqA := copyAt(t, slot, 0)
			_, seqB := copyAt(t, slot, 1)
			require.Greater(t, seqB, seqA, "the second version went to the other copy")

			tear(t, slot, 1, c.at, 4)
			recs, bad := reopen(t, dir)
			require.Len(t, recs, 1, "the run is still found")
			assert.Equal(t, []int{42}, recs[0].Handles.ProcessGroups, "from the older copy")
			require.Len(t, bad, 1)
			assert.Equal(t, journal.Damage{File: slot, Copy: "B", Reason: bad[0].Reason, OtherCopyUsed: true}, bad[0])
			assert.Contains(t, bad[0].Reason, c.reason)
			assert.Contains(t, bad[0].Error(), slot+", copy B")
			assert.Contains(t, bad[0].Error(), "the other copy was read instead")

			j = open(t, dir)
			r.Handles.ProcessGroups = []int{44}
			require.NoError(t, j.Put(r))
			require.NoError(t, j.Close())
			recs, bad = reopen(t, dir)
			assert.Empty(t, bad, "the write went over the damaged copy")
			require.Len(t, recs, 1)
			assert.Equal(t, []int{44}, recs[0].Handles.ProcessGroups)
		})
	}
}

// TestTornFreeMark: a free mark whose write was torn leaves the record
// it was freeing: the next process recovers that run again (harmless, see
// Remove).
func TestTornFreeMark(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	require.NoError(t, j.Put(record(0)))        // copy A
	require.NoError(t, j.Remove(testTaskID, 0)) // free mark in copy B
	require.NoError(t, j.Close())
	recs, _ := reopen(t, dir)
	require.Empty(t, recs)
	tear(t, filepath.Join(dir, "slot-0"), 1, 2, 8)
	recs, bad := reopen(t, dir)
	require.Len(t, recs, 1)
	assert.Equal(t, testTaskID, recs[0].TaskID)
	require.Len(t, bad, 1)
	assert.True(t, bad[0].OtherCopyUsed)
}

// TestSlotWithoutReadableCopy: a slot whose copies are both damaged is
// reported, left in place byte for byte and out of use; the journal takes
// a new slot instead.
func TestSlotWithoutReadableCopy(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	r := record(0)
	require.NoError(t, j.Put(r))
	require.NoError(t, j.Put(r))
	require.NoError(t, j.Close())
	slot := filepath.Join(dir, "slot-0")
	tear(t, slot, 0, 30, 4)
	tear(t, slot, 1, 30, 4)
	before, err := os.ReadFile(slot)
	require.NoError(t, err)

	j = open(t, dir)
	recs, bad, err := j.List()
	require.NoError(t, err)
	assert.Empty(t, recs)
	require.Len(t, bad, 2)
	for i, d := range bad {
		assert.Equal(t, slot, d.File)
		assert.Equal(t, string(rune('A'+i)), d.Copy)
		assert.False(t, d.OtherCopyUsed)
		assert.Contains(t, d.Error(), "no readable copy, left in place and out of use")
	}
	require.NoError(t, j.Reserve(1))
	require.NoError(t, j.Put(record(1)))
	require.NoError(t, j.Remove(testTaskID, 1))
	after, err := os.ReadFile(slot)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the damaged slot is not written")
	assert.FileExists(t, filepath.Join(dir, "slot-1"))
}

// TestUnreadableFiles: a slot file of the wrong size, a copy of another
// format version and a legacy record that is not JSON are reported with
// the file and the reason.
func TestUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	require.NoError(t, j.Put(record(0)))
	require.NoError(t, j.Close())
	// A newer format in copy A (version 2, checksum recomputed would not
	// matter: the version is checked first).
	f, err := os.OpenFile(filepath.Join(dir, "slot-0"), os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{2, 0}, 4)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "slot-7"), []byte("short"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad-0.json"), []byte("{"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("operator's"), 0o600))

	recs, bad := reopen(t, dir)
	assert.Empty(t, recs)
	got := map[string]string{}
	for _, d := range bad {
		got[filepath.Base(d.File)+d.Copy] = d.Reason
	}
	assert.Len(t, got, 3)
	assert.Contains(t, got["slot-0A"], "format version 2; this worker reads version 1")
	assert.Contains(t, got["slot-7"], "size 5 bytes is not two copies")
	assert.Contains(t, got["bad-0.json"], "record unreadable")
	j = open(t, dir)
	require.NoError(t, j.Put(record(1)))
	assert.FileExists(t, filepath.Join(dir, "slot-8"), "a new slot is numbered after every existing one")
}

// TestLegacyRecords: records an older worker wrote (one
// "<taskId>-<runId>.json" file each, 0600) are listed beside the slots'
// and their files removed when dropped; its temporary files are removed
// on Open.
func TestLegacyRecords(t *testing.T) {
	dir := t.TempDir()
	old := record(3)
	old.PID = 4242
	data, err := json.Marshal(old)
	require.NoError(t, err)
	legacy := filepath.Join(dir, old.LegacyName())
	require.Equal(t, testTaskID+"-3.json", filepath.Base(legacy))
	require.NoError(t, os.WriteFile(legacy, data, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("{"), 0o600))

	j := open(t, dir)
	assert.NoFileExists(t, filepath.Join(dir, ".tmp-123"))
	require.NoError(t, j.Put(record(0)))
	recs, bad, err := j.List()
	require.NoError(t, err)
	assert.Empty(t, bad)
	require.Len(t, recs, 2)
	assert.Equal(t, 0, recs[0].RunID)
	assert.Equal(t, 3, recs[1].RunID)
	assert.Equal(t, 4242, recs[1].PID, "as the older worker wrote it")
	assert.Equal(t, "secret", recs[1].Credentials.AccessToken)

	require.NoError(t, j.Remove(testTaskID, 3))
	assert.NoFileExists(t, legacy)
	recs, _ = reopen(t, dir)
	require.Len(t, recs, 1)
	assert.Equal(t, 0, recs[0].RunID)
}

// TestClosed: a closed journal refuses writes with a clear error.
func TestClosed(t *testing.T) {
	j := open(t, t.TempDir())
	require.NoError(t, j.Put(record(0)))
	require.NoError(t, j.Close())
	require.NoError(t, j.Close())
	assert.ErrorIs(t, j.Put(record(1)), os.ErrClosed)
	assert.Error(t, j.Remove(testTaskID, 0))
	var nilJ *journal.Journal
	assert.NoError(t, nilJ.Close())
}

// BenchmarkRunJournal is the journal's cost per run: the first record
// (before the sandbox starts), one update with the sandbox's handles, and
// the removal when the run is resolved; the two versions durable.
func BenchmarkRunJournal(b *testing.B) {
	j := open(b, b.TempDir())
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

// BenchmarkPut is one durable version of a run's record (an update: the
// run has its record already).
func BenchmarkPut(b *testing.B) {
	j, err := journal.Open(b.TempDir())
	require.NoError(b, err)
	r := record(0)
	for b.Loop() {
		if err := j.Put(r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSameRunInTwoSlots: a run found in two slots (a copied slot file)
// is listed once, at its later version; the other slot is marked free
// and reused, so the run does not come back once removed.
func TestSameRunInTwoSlots(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	r := record(0)
	require.NoError(t, j.Put(r))
	require.NoError(t, j.Close())
	data, err := os.ReadFile(filepath.Join(dir, "slot-0"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "slot-1"), data, 0o600))
	j = open(t, dir)
	r.Handles.ProcessGroups = []int{42, 43}
	require.NoError(t, j.Put(r)) // the later version, in slot-0
	require.NoError(t, j.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "slot-1"), data, 0o600))

	j = open(t, dir)
	recs, bad, err := j.List()
	require.NoError(t, err)
	assert.Empty(t, bad)
	require.Len(t, recs, 1)
	assert.Equal(t, []int{42, 43}, recs[0].Handles.ProcessGroups)
	require.NoError(t, j.Remove(testTaskID, 0))
	recs, _ = reopen(t, dir)
	assert.Empty(t, recs)
}
