//go:build unix

package journal_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/worker/journal"
)

// inodes maps each file in dir to its inode number.
func inodes(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	m := map[string]uint64{}
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		m[e.Name()] = fi.Sys().(*syscall.Stat_t).Ino
	}
	return m
}

// TestSlotReuseCreatesNoFiles: a journal of capacity 2 (two slots
// reserved) records 200 runs, two at a time, each with two versions and
// a removal: the directory keeps the same two files with the same inodes
// and sizes. A third run at once takes a new slot, kept and reused.
func TestSlotReuseCreatesNoFiles(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	require.NoError(t, j.Reserve(2))
	before := inodes(t, dir)
	require.Len(t, before, 2)

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				r := record(w*1000 + i)
				r.Handles = engines.Handles{}
				if err := j.Put(r); err != nil {
					errs <- err
					return
				}
				r.Handles.Cgroup = fmt.Sprintf("/sys/fs/cgroup/run-%d", i)
				if err := j.Put(r); err != nil {
					errs <- err
					return
				}
				if err := j.Remove(r.TaskID, r.RunID); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, before, inodes(t, dir), "same files, same inodes")
	for name := range before {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, int64(8192), fi.Size(), name)
	}
	recs, _ := reopen(t, dir)
	assert.Empty(t, recs)

	for i := range 3 {
		require.NoError(t, j.Put(record(i)))
	}
	grown := inodes(t, dir)
	require.Len(t, grown, 3, "a third run at once takes a third slot")
	recs, _ = reopen(t, dir)
	assert.Len(t, recs, 3)
	for i := range 3 {
		require.NoError(t, j.Remove(testTaskID, i))
	}
	for i := range 3 {
		require.NoError(t, j.Put(record(10+i)))
	}
	assert.Equal(t, grown, inodes(t, dir), "and reused")
}

// TestLargeRecordGrowsItsSlot: a record larger than a slot's copies grows
// the slot (a new file of larger copies, renamed over it), which keeps
// working in place afterwards and reads back on the next start.
func TestLargeRecordGrowsItsSlot(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	require.NoError(t, j.Reserve(1))
	r := record(0)
	require.NoError(t, j.Put(r))
	r.Credentials.Certificate = strings.Repeat("c", 10000)
	require.NoError(t, j.Put(r))
	slot := filepath.Join(dir, "slot-0")
	fi, err := os.Stat(slot)
	require.NoError(t, err)
	assert.Equal(t, int64(2*12288), fi.Size(), "two copies of 3 blocks")
	ino := inodes(t, dir)
	assert.Len(t, ino, 1)
	r.Handles.ProcessGroups = []int{7}
	require.NoError(t, j.Put(r))
	assert.Equal(t, ino, inodes(t, dir), "in place again once grown")
	require.NoError(t, j.Close())
	recs, bad := reopen(t, dir)
	assert.Empty(t, bad)
	require.Len(t, recs, 1)
	assert.Len(t, recs[0].Credentials.Certificate, 10000)
	assert.Equal(t, []int{7}, recs[0].Handles.ProcessGroups)
}

// TestMain runs the crash helper when asked to (see TestKill9BetweenPutAndRemove).
func TestMain(m *testing.M) {
	if dir := os.Getenv("JOURNAL_CRASH_HELPER"); dir != "" {
		crashHelper(dir)
		return
	}
	os.Exit(m.Run())
}

// crashHelper plays a worker process with two runs: run 1 is recorded and
// dropped, run 0 recorded and updated; it says "ready" on stdout and
// waits to be killed.
func crashHelper(dir string) {
	j, err := journal.Open(dir)
	if err == nil {
		err = j.Reserve(2)
	}
	r0, r1 := record(0), record(1)
	for _, step := range []func() error{
		func() error { return j.Put(r0) },
		func() error { return j.Put(r1) },
		func() error { return j.Remove(testTaskID, 1) },
		func() error { r0.Handles.ProcessGroups = []int{42, 43}; return j.Put(r0) },
	} {
		if err == nil {
			err = step()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	time.Sleep(time.Hour)
}

// TestKill9BetweenPutAndRemove: a process killed with SIGKILL after it
// recorded a run and before it dropped the record leaves the run's latest
// version for the next process, and not the run it had dropped.
func TestKill9BetweenPutAndRemove(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "JOURNAL_CRASH_HELPER="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "the helper failed")
	require.Equal(t, "ready\n", line)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the helper died of SIGKILL: %v", cmd.ProcessState)

	recs, bad := reopen(t, dir)
	assert.Empty(t, bad)
	require.Len(t, recs, 1)
	assert.Equal(t, 0, recs[0].RunID)
	assert.Equal(t, []int{42, 43}, recs[0].Handles.ProcessGroups)
	assert.Equal(t, cmd.Process.Pid, recs[0].PID)
	assert.Len(t, inodes(t, dir), 2)
}
