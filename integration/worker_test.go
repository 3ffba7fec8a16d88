//go:build linux || darwin

// Package integration runs the generated linux-native worker binary
// against the embedded Queue (taskcluster/localqueue) over real HTTP with
// Hawk: the same boundary a production worker crosses.
package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/gen"
	"github.com/workergen/workergen/gen/build"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/taskcluster/tcwire"
	"github.com/workergen/workergen/worker"
)

const (
	pool     = "workergen-it/native"
	clientID = "it-worker"
	token    = "it-worker-access-token"
)

var workerBin string

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// setup generates the linux-native profile and builds it for this machine
// into a temporary directory.
func setup(m *testing.M) (int, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp("", "workergen-it-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	// The binaries' state (the mounts plugin's caches of a `run`) goes
	// to a temporary directory, not the machine's /var/lib/workergen.
	if err := os.Setenv("STATE_DIRECTORY", filepath.Join(tmp, "state")); err != nil {
		return 0, err
	}
	res, err := build.Build(context.Background(), build.Options{
		Root: root, DistDir: filepath.Join(tmp, "dist"), Profile: "linux-native", BinDir: tmp, Version: "0.0.0-it", Commit: "it",
		Targets: []gen.Target{{OS: runtime.GOOS, Arch: runtime.GOARCH}},
	})
	if err != nil {
		return 0, err
	}
	workerBin = res.Binaries[0].Path
	return m.Run(), nil
}

type env struct {
	t      testing.TB
	queue  *localqueue.Server
	srv    *httptest.Server
	down   atomic.Bool
	shared string // a directory tasks and the test both see
	// fault, when set, sees every request first (a loopback proxy with
	// faults injected) and returns true when it answered it itself.
	fault atomic.Pointer[func(http.ResponseWriter, *http.Request) bool]
	bin   string // the worker binary start runs; "" means workerBin
}

func newEnv(t testing.TB, claimTimeout time.Duration) *env {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the linux-native worker runs on linux")
	}
	q, err := localqueue.New(localqueue.Options{
		Dir: t.TempDir(), ClaimTimeout: claimTimeout, LongPoll: time.Second, NoSync: true,
		Logger: slog.New(slog.DiscardHandler),
		Clients: []localqueue.Client{{ClientID: clientID, AccessToken: token,
			Scopes: []string{"queue:claim-work:" + pool, "queue:worker-id:it/*", "auth:expand-scopes"}}},
	})
	require.NoError(t, err)
	e := &env{t: t, queue: q, shared: t.TempDir()}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"code": "ServiceUnavailable", "message": "down for a test"}`))
			return
		}
		if f := e.fault.Load(); f != nil && (*f)(w, r) {
			return
		}
		q.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() { e.srv.Close(); _ = q.Close() })
	return e
}

// task creates a task with the given generic-worker payload.
func (e *env) task(payload map[string]any, retries int) string {
	e.t.Helper()
	id := worker.NewSlugID()
	now := time.Now().UTC()
	def := map[string]any{
		"taskQueueId": pool, "schedulerId": "it", "taskGroupId": id, "retries": retries,
		"created": now, "deadline": now.Add(time.Hour), "expires": now.Add(24 * time.Hour),
		"payload":  payload,
		"metadata": map[string]string{"name": "integration", "description": "d", "owner": "it@example.com", "source": "https://example.com/it"},
	}
	_, err := e.queue.CreateTaskJSON(context.Background(), id, def)
	require.NoError(e.t, err)
	return id
}

// start runs `worker work` with extra config settings.
func (e *env) start(extra map[string]any) (*exec.Cmd, *bytes.Buffer) {
	e.t.Helper()
	cfg := map[string]any{
		"rootUrl": e.srv.URL, "credentials": map[string]string{"clientId": clientID, "accessToken": token},
		"workerPoolId": pool, "workerGroup": "it", "workerId": "it-1",
		"tasksDir": filepath.Join(e.t.TempDir(), "tasks"), "shutdownGracePeriod": 0,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	path := filepath.Join(e.t.TempDir(), "worker.json")
	data, _ := json.Marshal(cfg)
	require.NoError(e.t, os.WriteFile(path, data, 0o644))
	bin := workerBin
	if e.bin != "" {
		bin = e.bin
	}
	cmd := exec.Command(bin, "work", "--config", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), stateDirEnv()}
	require.NoError(e.t, cmd.Start())
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, &out
}

// wait waits for the worker process to exit by itself.
func (e *env) wait(cmd *exec.Cmd, out *bytes.Buffer) {
	e.t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(e.t, err, "worker output:\n%s", out)
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		e.t.Fatalf("worker did not stop; output:\n%s", out)
	}
}

func (e *env) runState(id string, run int) string {
	e.t.Helper()
	st, err := e.queue.Status(id)
	require.NoError(e.t, err)
	if run >= len(st.Runs) {
		return "<no run>"
	}
	r := st.Runs[run]
	if r.State == tcwire.StateException {
		return r.State + "/" + r.ReasonResolved
	}
	return r.State
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sh(script string) []any { return []any{[]any{"/bin/sh", "-c", script}} }

func TestResolutions(t *testing.T) {
	e := newEnv(t, time.Minute)
	completed := e.task(map[string]any{"command": sh("echo hello"), "maxRunTime": 30}, 0)
	failed := e.task(map[string]any{"command": sh("exit 7"), "maxRunTime": 30}, 0)
	malformed := e.task(map[string]any{"command": sh("true"), "maxRunTime": "thirty"}, 0)
	intermittent := e.task(map[string]any{"command": sh("exit 75"), "maxRunTime": 30, "onExitStatus": map[string]any{"retry": []int{75}}}, 1)
	unsupported := e.task(map[string]any{"command": sh("true"), "maxRunTime": 30, "osGroups": []any{"docker"}}, 0) // insecure: osGroups must be empty
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 5})
	e.wait(cmd, out)

	assert.Equal(t, "completed", e.runState(completed, 0))
	assert.Equal(t, "failed", e.runState(failed, 0))
	assert.Equal(t, "exception/malformed-payload", e.runState(malformed, 0))
	assert.Equal(t, "exception/intermittent-task", e.runState(intermittent, 0))
	assert.Equal(t, "pending", e.runState(intermittent, 1), "intermittent-task is retried")
	assert.Equal(t, "exception/malformed-payload", e.runState(unsupported, 0))

	// The malformed-payload reasons are in the uploaded log.
	log := e.artifact(malformed, 0, "public/logs/live_backing.log")
	assert.Contains(t, log, "payload.maxRunTime")
	log = e.artifact(unsupported, 0, "public/logs/live_backing.log")
	assert.Contains(t, log, "payload.osGroups")
	log = e.artifact(completed, 0, "public/logs/live_backing.log")
	assert.Contains(t, log, "hello\n")
	assert.Contains(t, log, "resolution: completed")
}

// artifact returns an artifact's content, decoded.
func (e *env) artifact(id string, run int, name string) string {
	e.t.Helper()
	arts, err := e.queue.Artifacts(id, run)
	require.NoError(e.t, err)
	for _, a := range arts {
		if a.Name != name {
			continue
		}
		if a.ContentEncoding != "gzip" {
			return string(a.Content)
		}
		zr, err := gzip.NewReader(bytes.NewReader(a.Content))
		require.NoError(e.t, err)
		data, err := io.ReadAll(zr)
		require.NoError(e.t, err)
		return string(data)
	}
	e.t.Fatalf("task %s run %d has no artifact %q", id, run, name)
	return ""
}

func TestArtifactsEmptyAndOddNames(t *testing.T) {
	e := newEnv(t, time.Minute)
	id := e.task(map[string]any{
		"command":    sh(": > empty.txt; mkdir -p d; echo x > 'd/a b+c.txt'"),
		"maxRunTime": 30,
		"artifacts": []any{
			map[string]any{"type": "file", "path": "empty.txt", "name": "public/with space+plus/empty.txt"},
			map[string]any{"type": "directory", "path": "d", "name": "public/dir"},
			map[string]any{"type": "file", "path": "missing.txt", "name": "public/missing.txt"},
		},
	}, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 1})
	e.wait(cmd, out)
	assert.Equal(t, "failed", e.runState(id, 0), "a missing non-optional artifact fails the task")
	assert.Equal(t, "", e.artifact(id, 0, "public/with space+plus/empty.txt"))
	assert.Equal(t, "x\n", e.artifact(id, 0, "public/dir/a b+c.txt"))
	arts, err := e.queue.Artifacts(id, 0)
	require.NoError(t, err)
	kinds := map[string]string{}
	for _, a := range arts {
		kinds[a.Name] = a.StorageType
	}
	assert.Equal(t, "error", kinds["public/missing.txt"])
	assert.Equal(t, "link", kinds["public/logs/live.log"])
}

func TestObjectArtifacts(t *testing.T) {
	e := newEnv(t, time.Minute)
	id := e.task(map[string]any{
		"command": sh("echo object > o.txt"), "maxRunTime": 30,
		"artifacts": []any{map[string]any{"type": "file", "path": "o.txt", "name": "public/o.txt"}},
	}, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 1, "artifactUpload": "object"})
	e.wait(cmd, out)
	assert.Equal(t, "completed", e.runState(id, 0), "worker output:\n%s", out)
	assert.Equal(t, "object\n", e.artifact(id, 0, "public/o.txt"))
}

func TestClaimKeptAliveAcrossReclaimsWithLiveLog(t *testing.T) {
	e := newEnv(t, 3*time.Second)
	id := e.task(map[string]any{"command": sh("echo started; sleep 8; echo done"), "maxRunTime": 60}, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 1,
		"plugins": map[string]any{"tasklog": map[string]any{"liveLog": map[string]any{"listenAddress": "127.0.0.1:0"}}}})

	// While the task runs, live.log is a reference to the worker's stream.
	var liveURL string
	eventually(t, "the live log reference", func() bool {
		arts, _ := e.queue.Artifacts(id, 0)
		for _, a := range arts {
			if a.Name == "public/logs/live.log" && a.StorageType == "reference" {
				liveURL = a.URL
				return true
			}
		}
		return false
	})
	resp, err := http.Get(liveURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	all, err := io.ReadAll(resp.Body) // ends when the task's log is complete
	require.NoError(t, err)
	assert.Contains(t, string(all), "started\n")
	assert.Contains(t, string(all), "done\n")

	e.wait(cmd, out)
	assert.Equal(t, "completed", e.runState(id, 0), "worker output:\n%s", out)
	st, err := e.queue.Status(id)
	require.NoError(t, err)
	assert.Len(t, st.Runs, 1, "the claim never expired")
}

func pidAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func readPIDs(t *testing.T, path string) []int {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

func TestCancelledMidRun(t *testing.T) {
	e := newEnv(t, 3*time.Second)
	pidFile := filepath.Join(e.shared, "pids")
	id := e.task(map[string]any{
		"command":    sh(fmt.Sprintf("sleep 600 & echo $! >> %[1]s; echo $$ >> %[1]s; wait", pidFile)),
		"maxRunTime": 600,
	}, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 1})
	eventually(t, "the task's processes", func() bool { return len(readPIDs(t, pidFile)) == 2 })
	_, err := e.queue.Cancel(id)
	require.NoError(t, err)
	e.wait(cmd, out)
	for _, pid := range readPIDs(t, pidFile) {
		eventually(t, fmt.Sprintf("process %d to die", pid), func() bool { return !pidAlive(pid) })
	}
	assert.Equal(t, "exception/canceled", e.runState(id, 0))
	assert.Contains(t, out.String(), "409")
	assert.NotContains(t, out.String(), "msg=resolved", "nothing is reported for a cancelled run")
	// The log's artifact was created when the run started; it is not left
	// without content.
	assert.Contains(t, e.artifact(id, 0, "public/logs/live_backing.log"), "[workergen ")
}

func TestSIGTERMMidTask(t *testing.T) {
	e := newEnv(t, time.Minute)
	pidFile := filepath.Join(e.shared, "pids")
	id := e.task(map[string]any{"command": sh(fmt.Sprintf("echo $$ >> %s; sleep 600", pidFile)), "maxRunTime": 600}, 2)
	cmd, out := e.start(nil)
	eventually(t, "the task to start", func() bool { return len(readPIDs(t, pidFile)) == 1 })
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err := cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "worker output:\n%s", out)
	assert.Equal(t, worker.ExitSignal, exit.ExitCode(), "stopped by a signal: 71, as generic-worker")
	assert.Equal(t, "exception/worker-shutdown", e.runState(id, 0))
	assert.Equal(t, "pending", e.runState(id, 1), "worker-shutdown makes a new run")
	for _, pid := range readPIDs(t, pidFile) {
		assert.False(t, pidAlive(pid), "task process %d survived the worker", pid)
	}
}

func TestQueueDownMidTask(t *testing.T) {
	e := newEnv(t, time.Minute)
	marker := filepath.Join(e.shared, "started")
	id := e.task(map[string]any{"command": sh(fmt.Sprintf("touch %s; sleep 2; echo done", marker)), "maxRunTime": 60}, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 1})
	eventually(t, "the task to start", func() bool { _, err := os.Stat(marker); return err == nil })
	e.down.Store(true)
	time.Sleep(5 * time.Second) // the task ends and the worker's uploads hit the outage
	e.down.Store(false)
	e.wait(cmd, out)
	assert.Equal(t, "completed", e.runState(id, 0), "worker output:\n%s", out)
	assert.Contains(t, e.artifact(id, 0, "public/logs/live_backing.log"), "done\n")
}

func TestCapacity8(t *testing.T) {
	e := newEnv(t, time.Minute)
	var ids []string
	for range 8 {
		// Each task waits until all 8 have started: this only completes
		// when the worker really runs 8 at once.
		script := fmt.Sprintf("touch %[1]s/started-$TASK_ID; i=0; while [ $(ls %[1]s | wc -l) -lt 8 ]; do sleep 0.1; i=$((i+1)); [ $i -lt 600 ] || exit 9; done", e.shared)
		ids = append(ids, e.task(map[string]any{"command": sh(script), "maxRunTime": 120}, 0))
	}
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 8, "capacity": 8})
	e.wait(cmd, out)
	for _, id := range ids {
		assert.Equal(t, "completed", e.runState(id, 0), "worker output:\n%s", out)
	}
}

// stateDirEnv is the STATE_DIRECTORY entry of a worker binary's
// environment: the test run's temporary state directory (set by setup).
func stateDirEnv() string { return "STATE_DIRECTORY=" + os.Getenv("STATE_DIRECTORY") }
