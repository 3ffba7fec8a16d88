//go:build linux

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rundirScript is run n's command: it records the identity (inode number
// and birth time: ext4 hands a deleted inode's number to the next new
// inode) of its task directory, run directory and log and what its task
// directory and tasksDir hold, then leaves a mess: files, a symbolic link
// to /, a read-only subtree (chmod -R a-w) and a directory that cannot be
// entered holding one that cannot be listed.
func rundirScript(shared string, n int) []any {
	return sh(fmt.Sprintf(`s=%s; n=%d
stat -c '%%i %%w' . > $s/run$n.task
stat -c '%%i %%w' .. > $s/run$n.run
stat -c '%%i %%w' ../live_backing.log > $s/run$n.log
ls -A > $s/run$n.entries
ls -A ../.. > $s/run$n.tasksdir
mkdir -p ro/a/b locked/inner && echo x > ro/a/b/f && echo x > locked/inner/f && echo x > left && ln -s / root-link
chmod -R a-w ro && chmod 300 locked/inner && chmod 000 locked`, shared, n))
}

// rundirSeen reads what run n's command recorded.
func rundirSeen(t *testing.T, shared string, n int, what string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(shared, fmt.Sprintf("run%d.%s", n, what)))
	require.NoError(t, err)
	return strings.TrimSpace(string(data))
}

// spareNames lists the spare run directories in tasksDir.
func spareNames(t *testing.T, tasksDir string) []string {
	entries, err := os.ReadDir(tasksDir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".spare-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// runTwo runs rundirScript 1 and 2 on a started worker, task 2 created
// once run 1's directory became a spare, and checks that the run
// directory and the log were reused, that the task directory was reused
// exactly when taskReused says so, and that run 2's task directory was
// empty.
func (e *env) runTwo(t *testing.T, tasksDir string, taskReused func() bool) {
	for n := 1; n <= 2; n++ {
		id := e.task(map[string]any{"command": rundirScript(e.shared, n), "maxRunTime": 60}, 0)
		eventually(t, fmt.Sprintf("task %d to complete", n), func() bool { return e.runState(id, 0) == "completed" })
		if n == 1 {
			eventually(t, "a spare run directory", func() bool { return len(spareNames(t, tasksDir)) > 0 })
		}
	}
	assert.Equal(t, rundirSeen(t, e.shared, 1, "run"), rundirSeen(t, e.shared, 2, "run"), "the run directory is reused")
	assert.Equal(t, rundirSeen(t, e.shared, 1, "log"), rundirSeen(t, e.shared, 2, "log"), "the log is reused")
	if taskReused() {
		assert.Equal(t, rundirSeen(t, e.shared, 1, "task"), rundirSeen(t, e.shared, 2, "task"), "the task directory is reused")
	} else {
		assert.NotEqual(t, rundirSeen(t, e.shared, 1, "task"), rundirSeen(t, e.shared, 2, "task"), "the task directory is made afresh")
	}
	assert.Empty(t, rundirSeen(t, e.shared, 2, "entries"), "run 2's task directory is empty")
}

// withCgroups reports whether the worker whose output is out runs tasks
// in cgroups (then it reuses task directories).
func withCgroups(out fmt.Stringer) func() bool {
	return func() bool { return !strings.Contains(out.String(), "not using cgroups") }
}

// TestRunDirReuseAndCrashLeftovers: the linux-native binary reuses a run's
// directories for the next run, after a task that left a mess; killed with
// SIGKILL while a spare exists, the next start removes the spare before
// its first run, and a graceful exit leaves nothing but the journal.
func TestRunDirReuseAndCrashLeftovers(t *testing.T) {
	e := newEnv(t, time.Minute)
	tasksDir := filepath.Join(t.TempDir(), "tasks")
	cfg := map[string]any{"tasksDir": tasksDir}
	cmd, out := e.start(cfg)
	e.runTwo(t, tasksDir, withCgroups(out))

	eventually(t, "a spare run directory", func() bool { return len(spareNames(t, tasksDir)) > 0 })
	left := spareNames(t, tasksDir)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	for _, s := range left {
		require.DirExists(t, filepath.Join(tasksDir, s), "the killed worker left its spare")
	}

	cfg["numberOfTasksToRun"] = 1
	cmd2, out2 := e.start(cfg)
	// The task comes once the new worker claims: a claimWork of the
	// killed worker the Queue has not yet seen end must not take it.
	eventually(t, "the restarted worker to start", func() bool { return strings.Contains(out2.String(), "worker started") })
	id := e.task(map[string]any{"command": rundirScript(e.shared, 3), "maxRunTime": 60}, 0)
	e.wait(cmd2, out2)
	assert.Equal(t, "completed", e.runState(id, 0), "worker output:\n%s", out2)
	assert.NotContains(t, rundirSeen(t, e.shared, 3, "tasksdir"), ".spare-", "spares are gone before the first run")
	assert.Contains(t, out2.String(), "removed a spare run directory left by an earlier worker")
	entries, err := os.ReadDir(tasksDir)
	require.NoError(t, err)
	for _, en := range entries {
		assert.Equal(t, ".journal", en.Name(), "only the journal is left in tasksDir")
	}
}

// TestRunDirUnprivileged: the linux-native binary as an unprivileged user
// (nobody), for whom a read-only subtree or a directory without
// permissions cannot simply be removed: the run after a messy task gets an
// empty task directory, and nothing is left in tasksDir after the worker
// exits.
func TestRunDirUnprivileged(t *testing.T) {
	e := newEnv(t, time.Minute)
	const nobody = 65534
	base := t.TempDir()
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: nobody, Gid: nobody}
		traversable(t, base)
		require.NoError(t, os.Chmod(e.shared, 0o777))
	}
	own := func(p string) {
		if cred != nil {
			require.NoError(t, os.Chown(p, nobody, nobody))
		}
	}
	// The binary where nobody can run it.
	bin := filepath.Join(base, "workergen")
	src, err := os.Open(workerBin)
	require.NoError(t, err)
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
	_ = src.Close()
	tasksDir, stateDir := filepath.Join(base, "tasks"), filepath.Join(base, "state")
	for _, d := range []string{tasksDir, stateDir} {
		require.NoError(t, os.Mkdir(d, 0o755))
		own(d)
	}
	cfg := map[string]any{
		"rootUrl": e.srv.URL, "credentials": map[string]string{"clientId": clientID, "accessToken": token},
		"workerPoolId": pool, "workerGroup": "it", "workerId": "it-nobody",
		"tasksDir": tasksDir, "stateDir": stateDir, "shutdownGracePeriod": 0, "numberOfTasksToRun": 2,
	}
	path := filepath.Join(base, "worker.json")
	data, _ := json.Marshal(cfg)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	cmd := exec.Command(bin, "work", "--config", path)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + base}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	e.runTwo(t, tasksDir, withCgroups(&out))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "worker output:\n%s", out.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("worker did not stop; output:\n%s", out.String())
	}
	entries, err := os.ReadDir(tasksDir)
	require.NoError(t, err)
	for _, en := range entries {
		assert.Equal(t, ".journal", en.Name(), "only the journal is left in tasksDir; worker output:\n%s", out.String())
	}
}

// TestRunDirMultiuser: the linux-multiuser worker hands each run's task
// directory to a new user, so the next run gets a fresh task directory
// (while the run directory and log, the worker's own, are reused).
func TestRunDirMultiuser(t *testing.T) {
	bin, e, base := multiuserSetup(t)
	tasksDir := filepath.Join(base, "tasks")
	cfgPath := filepath.Join(t.TempDir(), "worker.json")
	data, _ := json.Marshal(map[string]any{
		"rootUrl": e.srv.URL, "credentials": map[string]string{"clientId": clientID, "accessToken": token},
		"workerPoolId": pool, "workerGroup": "it", "workerId": "it-1", "capacity": 1,
		"tasksDir": tasksDir, "shutdownGracePeriod": 0,
	})
	require.NoError(t, os.WriteFile(cfgPath, data, 0o600))
	cmd := exec.Command(bin, "work", "--config", cfgPath)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), stateDirEnv()}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	e.runTwo(t, tasksDir, func() bool { return false })
}
