//go:build linux || darwin

package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/worker/journal"
)

// crashScript is a task command for the kill -9 tests: on its first run
// it leaves a setsid grandchild (its own session and process group, so
// only the run's cgroup holds it), records both pids and its cgroup, and
// sleeps; on later runs it just succeeds.
func crashScript(shared string) []any {
	return sh(fmt.Sprintf(`cd %[1]s
if [ -e started ]; then echo second run; exit 0; fi
touch started
cat /proc/self/cgroup > cgroup
setsid sh -c 'echo $$ >> pids; exec sleep 600' &
echo $$ >> pids
exec sleep 600`, shared))
}

// runCgroupDir is the cgroup v2 directory the task recorded, "" when none.
func runCgroupDir(t *testing.T, shared string) string {
	data, err := os.ReadFile(filepath.Join(shared, "cgroup"))
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(cgroup2Mount(t), p)
		}
	}
	return ""
}

// TestKill9RecoveryNative kills the linux-native worker with SIGKILL in
// the middle of a task whose command left a setsid grandchild, restarts it
// with the same config and checks that the restarted worker kills every
// process of run 0 (by pid and by cgroup), resolves run 0
// exception/worker-shutdown (not claim-expired), removes run 0's
// directory, and completes run 1.
func TestKill9RecoveryNative(t *testing.T) {
	e := newEnv(t, 2*time.Minute)
	tasksDir := filepath.Join(t.TempDir(), "tasks")
	id := e.task(map[string]any{"command": crashScript(e.shared), "maxRunTime": 600}, 1)
	cfg := map[string]any{"tasksDir": tasksDir}
	cmd, out := e.start(cfg)
	pidFile := filepath.Join(e.shared, "pids")
	eventually(t, "the task and its setsid grandchild", func() bool { return len(readPIDs(t, pidFile)) == 2 })
	if strings.Contains(out.String(), "not using cgroups") {
		t.Skip("no cgroup v2 delegation here: a setsid grandchild cannot be contained")
	}
	runDir := filepath.Join(tasksDir, id+"-0")
	require.DirExists(t, runDir)
	cg := runCgroupDir(t, e.shared)
	require.NotEmpty(t, cg, "task ran in no cgroup v2 cgroup")
	require.DirExists(t, cg)

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	pids := readPIDs(t, pidFile)
	for _, pid := range pids {
		require.True(t, pidAlive(pid), "process %d died with the worker: the test shows nothing", pid)
	}

	// The dead worker's journal names run 0 and its cgroup.
	jdir := filepath.Join(tasksDir, ".journal")
	recs := journalRecords(t, jdir)
	require.Len(t, recs, 1)
	assert.Equal(t, id, recs[0].TaskID)
	assert.Equal(t, 0, recs[0].RunID)
	assert.Equal(t, cmd.Process.Pid, recs[0].PID)
	assert.NotEmpty(t, recs[0].Handles.Cgroup)
	slots := journalFiles(t, jdir)

	restart := time.Now()
	cfg["numberOfTasksToRun"] = 1
	cmd2, out2 := e.start(cfg)
	eventually(t, "run 0 to be cleaned up and resolved", func() bool {
		for _, pid := range pids {
			if processLive(pid) {
				return false
			}
		}
		_, cgErr := os.Stat(cg)
		_, dirErr := os.Stat(runDir)
		return os.IsNotExist(cgErr) && os.IsNotExist(dirErr) && e.runState(id, 0) == "exception/worker-shutdown"
	})
	t.Logf("FIGURE restart to run 0 cleaned and resolved: %v", time.Since(restart))
	e.wait(cmd2, out2)
	assert.Equal(t, "exception/worker-shutdown", e.runState(id, 0), "worker output:\n%s", out2)
	assert.Equal(t, "completed", e.runState(id, 1), "worker output:\n%s", out2)
	assert.NoDirExists(t, runDir)
	assert.Empty(t, journalRecords(t, jdir), "run 0's record is dropped, and run 1's")
	assert.Equal(t, slots, journalFiles(t, jdir), "run 1 reused run 0's journal slot")
	assert.Contains(t, out2.String(), "recovering a run left by an earlier worker process")
	assert.Contains(t, out2.String(), "recovery: resolved the run")
	assert.NotEmpty(t, e.artifact(id, 0, "public/logs/live_backing.log"), "run 0's log as far as it was written")
}

// processLive reports whether pid is a process that is not a zombie (a
// killed process whose parent died waits, as a zombie, for init to reap
// it).
func processLive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// cgroup2Mount is where the cgroup v2 hierarchy is mounted
// (/proc/self/mountinfo): /sys/fs/cgroup, or /sys/fs/cgroup/unified on
// hybrid systems.
func cgroup2Mount(t *testing.T) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" && len(f) > 4 {
				return f[4]
			}
		}
	}
	t.Fatal("no cgroup2 mount")
	return ""
}

// journalRecords reads the records in the run journal dir as the next
// worker process would.
func journalRecords(t *testing.T, dir string) []*journal.Record {
	t.Helper()
	j, err := journal.Open(dir)
	require.NoError(t, err)
	defer j.Close()
	recs, bad, err := j.List()
	require.NoError(t, err)
	require.Empty(t, bad)
	return recs
}

// journalFiles maps the files in the run journal dir to their inodes.
func journalFiles(t *testing.T, dir string) map[string]uint64 {
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

// TestKill9RecoveryObjectLog: with object artifacts, the task log's
// artifact is created while the task runs and the run's journal record
// keeps the Queue's answer; the worker is killed with SIGKILL before the
// log is uploaded. The Queue refuses to create an object artifact twice
// (here a proxy refuses the repeat, as upstream's new uploadId would
// conflict), so the restarted worker uploads the log with the kept answer.
func TestKill9RecoveryObjectLog(t *testing.T) {
	e := newEnv(t, 2*time.Minute)
	tasksDir := filepath.Join(t.TempDir(), "tasks")
	id := e.task(map[string]any{"command": crashScript(e.shared), "maxRunTime": 600}, 1)
	cfg := map[string]any{"tasksDir": tasksDir, "artifactUpload": "object"}
	cmd, out := e.start(cfg)
	eventually(t, "the task and its setsid grandchild", func() bool { return len(readPIDs(t, filepath.Join(e.shared, "pids"))) == 2 })
	if strings.Contains(out.String(), "not using cgroups") {
		t.Skip("no cgroup v2 delegation here: a setsid grandchild cannot be contained")
	}
	eventually(t, "the journal record to hold the log's object upload", func() bool {
		// A journal lists what it read when opened: open it afresh.
		recs := journalRecords(t, filepath.Join(tasksDir, ".journal"))
		return len(recs) == 1 && recs[0].LogObject != nil
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	var refused atomic.Int32
	e.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.Contains(r.URL.Path, "/runs/0/artifacts/") || !strings.HasSuffix(r.URL.Path, "live_backing.log") {
			return false
		}
		refused.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(w, `{"code": "RequestConflict", "message": "injected by the test: an object artifact is created once"}`)
		return true
	})
	cfg["numberOfTasksToRun"] = 1
	cmd2, out2 := e.start(cfg)
	e.wait(cmd2, out2)
	assert.Equal(t, "exception/worker-shutdown", e.runState(id, 0), "worker output:\n%s", out2)
	assert.Equal(t, "completed", e.runState(id, 1), "worker output:\n%s", out2)
	assert.Zero(t, refused.Load(), "recovery did not create the log's artifact again")
	assert.Contains(t, out2.String(), "recovery: uploaded the task log")
	assert.NotEmpty(t, e.artifact(id, 0, "public/logs/live_backing.log"), "run 0's log as far as it was written")
}
