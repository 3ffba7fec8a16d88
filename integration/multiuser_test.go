//go:build linux

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
	"github.com/workergen/workergen/worker"
)

// buildProfile generates and builds a profile's worker for this machine
// (in the profile's own dist module).
func buildProfile(t *testing.T, profile string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	res, err := build.Build(context.Background(), build.Options{
		Root: root, DistDir: t.TempDir(), Profile: profile, BinDir: t.TempDir(), Version: "0.0.0-it", Commit: "it",
		Targets: []gen.Target{{OS: runtime.GOOS, Arch: runtime.GOARCH}},
	})
	require.NoError(t, err)
	return res.Binaries[0].Path
}

// traversable makes dir and its parents up to the temporary directory
// crossable by other users (0711), as a production tasksDir's parents are.
func traversable(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o711))
	}
}

// multiuserTask creates a task with the given scopes and payload.
func (e *env) multiuserTask(scopes []string, payload map[string]any) string {
	e.t.Helper()
	id := worker.NewSlugID()
	now := time.Now().UTC()
	_, err := e.queue.CreateTaskJSON(context.Background(), id, map[string]any{
		"taskQueueId": pool, "schedulerId": "it", "taskGroupId": id, "scopes": scopes,
		"created": now, "deadline": now.Add(time.Hour), "expires": now.Add(24 * time.Hour),
		"payload":  payload,
		"metadata": map[string]string{"name": "multiuser", "description": "d", "owner": "it@example.com", "source": "https://example.com/it"},
	})
	require.NoError(e.t, err)
	return id
}

// twinScript is what each of two concurrent tasks (me, other) runs: it
// leaves its uid, pid, task directory and proxy URL in the shared
// directory, waits for the other's, then tries to read the worker's
// config and environment, signal the worker and the other run, move
// itself into the root cgroup, list the other's task directory and use
// the other's proxy, and leaves a background process.
const twinScript = `s=$SHARED; me=$1; other=$2
id -u > $s/$me.uid; echo $$ > $s/$me.pid; pwd > $s/$me.dir; echo $TASKCLUSTER_PROXY_URL > $s/$me.proxy
touch $s/$me.ready
i=0; while [ ! -e $s/$other.ready ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
echo "uid=$(id -u)"
cat "$CONFIG" >/dev/null; echo "config=$?"
kill -0 $PPID; echo "signal-worker=$?"
cat /proc/$PPID/environ >/dev/null; echo "worker-environ=$?"
echo $$ > /sys/fs/cgroup/cgroup.procs; echo "root-cgroup=$?"
kill -0 "$(cat $s/$other.pid)"; echo "signal-other=$?"
ls "$(cat $s/$other.dir)" >/dev/null; echo "list-other=$?"
hostport=$(sed 's|http://||' $s/$other.proxy)
exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" && printf 'GET /api/queue/v1/ping HTTP/1.0\r\nHost: taskcluster\r\n\r\n' >&3 && head -1 <&3
setsid sleep 1000 >/dev/null 2>&1 &
touch $s/$me.done
i=0; while [ ! -e $s/$other.done ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done`

// multiuserSetup skips unless root, builds the linux-multiuser worker and
// returns it with an environment whose shared directory any task user can
// write, and a base directory task users can traverse.
func multiuserSetup(t *testing.T) (bin string, e *env, base string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the multiuser worker runs as root")
	}
	bin = buildProfile(t, "linux-multiuser")
	e = newEnv(t, time.Minute)
	traversable(t, e.shared)
	require.NoError(t, os.Chmod(e.shared, 0o1777))
	base = t.TempDir()
	traversable(t, base)
	return bin, e, base
}

// TestMultiuserWorker runs the generated linux-multiuser worker at
// capacity 2 against the embedded Queue: each task is a fresh, unprivileged
// user that cannot read the worker's config, signal the worker or the
// other run, list the other run's task directory or use its proxy, and
// leaves no user and no process behind; a cache written by one task user is
// read and written by the next.
func TestMultiuserWorker(t *testing.T) {
	bin, e, base := multiuserSetup(t)
	cfgPath := filepath.Join(t.TempDir(), "worker.json")
	payload := func(me, other string) map[string]any {
		return map[string]any{"command": []any{[]any{"/bin/bash", "-c", twinScript, "twin", me, other}}, "maxRunTime": 120,
			"env": map[string]string{"SHARED": e.shared, "CONFIG": cfgPath}, "features": map[string]any{"taskclusterProxy": true}}
	}
	a := e.multiuserTask(nil, payload("a", "b"))
	b := e.multiuserTask(nil, payload("b", "a"))
	cfg := map[string]any{
		"rootUrl": e.srv.URL, "credentials": map[string]string{"clientId": clientID, "accessToken": token},
		"workerPoolId": pool, "workerGroup": "it", "workerId": "it-1", "capacity": 2, "numberOfTasksToRun": 2,
		"tasksDir": filepath.Join(base, "tasks"), "shutdownGracePeriod": 0,
	}
	data, _ := json.Marshal(cfg)
	require.NoError(t, os.WriteFile(cfgPath, data, 0o600))
	runWorker(t, bin, cfgPath)

	uids := map[string]string{}
	for name, id := range map[string]string{"a": a, "b": b} {
		log := e.artifact(id, 0, "public/logs/live_backing.log")
		require.Equal(t, "completed", e.runState(id, 0), log)
		uid := strings.TrimSpace(readFile(t, filepath.Join(e.shared, name+".uid")))
		uids[name] = uid
		assert.NotEqual(t, "0", uid, log)
		assert.Contains(t, log, "config=1", "worker config readable:\n%s", log)
		assert.Contains(t, log, "Permission denied", log)
		assert.Contains(t, log, "signal-worker=1", log)
		assert.Contains(t, log, "worker-environ=1", log)
		assert.Contains(t, log, "root-cgroup=1", log)
		assert.Contains(t, log, "signal-other=1", log)
		assert.Contains(t, log, "list-other=2", log)
		assert.Regexp(t, `HTTP/1\.[01] 403 Forbidden`, log)
		_, err := user.LookupId(uid)
		assert.Error(t, err, "task user %s still in /etc/passwd", uid)
		n, _ := strconv.Atoi(uid)
		assert.Empty(t, processesOf(t, n), "processes of task user %s left", uid)
	}
	assert.NotEqual(t, uids["a"], uids["b"])

	// A cache written by one task user is read and written by the next.
	cache := []any{map[string]any{"cacheName": "shared-cache", "directory": "cache"}}
	scopes := []string{"generic-worker:cache:shared-cache"}
	c1 := e.multiuserTask(scopes, map[string]any{"command": sh("id -u > cache/first && echo one > cache/log && chmod 600 cache/log"), "maxRunTime": 60, "mounts": cache})
	c2 := e.multiuserTask(scopes, map[string]any{"command": sh(`test "$(id -u)" != "$(cat cache/first)" && echo two >> cache/log && cat cache/log`), "maxRunTime": 60, "mounts": cache})
	cfg["capacity"], cfg["numberOfTasksToRun"] = 1, 2
	data, _ = json.Marshal(cfg)
	require.NoError(t, os.WriteFile(cfgPath, data, 0o600))
	runWorker(t, bin, cfgPath)
	require.Equal(t, "completed", e.runState(c1, 0), e.artifact(c1, 0, "public/logs/live_backing.log"))
	log := e.artifact(c2, 0, "public/logs/live_backing.log")
	require.Equal(t, "completed", e.runState(c2, 0), log)
	assert.Contains(t, log, "one\ntwo\n")
}

func runWorker(t *testing.T, bin, cfgPath string) {
	t.Helper()
	cmd := exec.Command(bin, "work", "--config", cfgPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), stateDirEnv()}
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "worker output:\n%s", out.String())
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("worker did not stop; output:\n%s", out.String())
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

// processesOf lists live processes with uid among their uids.
func processesOf(t *testing.T, uid int) []string {
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil || strings.Contains(string(data), "State:\tZ") {
			continue
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Uid:"); ok {
				for _, f := range strings.Fields(v) {
					if f == strconv.Itoa(uid) {
						out = append(out, e.Name())
						break
					}
				}
			}
		}
	}
	return out
}
