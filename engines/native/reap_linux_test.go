package native_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines/native"
)

// TestLeftoverCgroupOfDeadWorkerRemoved: a run cgroup whose worker process
// is gone (owner tag naming no live process), with a process still in it,
// is killed and removed when an engine starts; a run cgroup of a live
// worker (this test process) is left alone.
func TestLeftoverCgroupOfDeadWorkerRemoved(t *testing.T) {
	probe := newEngine(t, `{}`)
	if !probe.(*native.Engine).UsesCgroups() {
		t.Skip("cgroup v2 delegation unavailable")
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	require.NoError(t, err)
	var own string
	for _, line := range strings.Split(string(data), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			own = p
		}
	}
	parent := filepath.Join(cgroup2Mount(t), own)

	dead := filepath.Join(parent, "workergen-o999999999.1-T-0-aaaaaaaaaaaa")
	live := filepath.Join(parent, "workergen-o"+strconv.Itoa(os.Getpid())+"."+selfStart(t)+"-T-0-bbbbbbbbbbbb")
	for _, d := range []string{dead, live} {
		require.NoError(t, os.Mkdir(d, 0o755))
	}
	t.Cleanup(func() { _ = os.Remove(live); _ = os.Remove(dead) })
	sleeper := exec.Command("sleep", "600")
	require.NoError(t, sleeper.Start())
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	require.NoError(t, os.WriteFile(filepath.Join(dead, "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0))

	newEngine(t, `{}`)
	assert.NoDirExists(t, dead)
	assert.DirExists(t, live)
	_ = sleeper.Wait()
	assert.Equal(t, "signal: killed", sleeper.ProcessState.String())
}

// selfStart is this process's start time (field 22 of /proc/self/stat).
func selfStart(t *testing.T) string {
	data, err := os.ReadFile("/proc/self/stat")
	require.NoError(t, err)
	i := strings.LastIndexByte(string(data), ')')
	return strings.Fields(string(data[i+1:]))[19]
}

// cgroup2Mount is where the cgroup v2 hierarchy is mounted
// (/proc/self/mountinfo).
func cgroup2Mount(t *testing.T) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "cgroup2" {
				return f[4]
			}
		}
	}
	t.Fatal("no cgroup2 mount")
	return ""
}

// TestRunCgroupRemovedWithResult: a run's cgroup, which held a daemon the
// task left behind, is gone when the run's result is: no process of the
// run outlives it (worker/rundir.go reuses the run's directory on that).
func TestRunCgroupRemovedWithResult(t *testing.T) {
	e := newEngine(t, `{}`)
	if !e.(*native.Engine).UsesCgroups() {
		t.Skip("cgroup v2 delegation unavailable")
	}
	// The task prints its cgroup and leaves a sleeper behind in it.
	r, err := newTestRun(t, e, `{"command":[["sh","-c","cat /proc/self/cgroup; sleep 600 & exit 0"]]}`)
	require.NoError(t, err)
	rs := r.run(t)
	out := string(r.log.Bytes())
	require.True(t, rs.Success(), out)
	var rel string
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel = p
		}
	}
	require.Contains(t, rel, "workergen-", out)
	assert.NoDirExists(t, filepath.Join(cgroup2Mount(t), rel))
}
