//go:build linux

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/internal/ed25519key"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/worker"
	"github.com/workergen/workergen/worker/workerproto/runnertest"
)

// The tests in this file start the generated linux-native binary as
// worker-runner starts generic-worker in a static worker pool
// (runnertest.StartStaticWorker: registerWorker with the embedded
// worker-manager, generic-worker's config file, `run --config FILE
// --with-worker-runner`, the protocol on its stdin and stdout), against the
// embedded Queue.

const (
	runnerGroup = "it"
	runnerID    = "it-1"
)

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startRunner registers a static worker in e's worker-manager with the
// pool's workerConfig poolConfig, and starts the worker binary as
// worker-runner would, the runner config's workerConfig being runnerConfig
// plus directories under the test's temporary directory.
func (e *env) startRunner(poolConfig, runnerConfig map[string]any, capabilities ...string) (*runnertest.WorkerRunner, *syncBuffer) {
	e.t.Helper()
	require.NoError(e.t, e.queue.CreateWorkerPool(localqueue.WorkerPool{WorkerPoolID: pool, WorkerConfig: poolConfig}))
	secret := hawk.NewSeed()
	require.NoError(e.t, e.queue.CreateStaticWorker(pool, runnerGroup, runnerID, secret))
	dir := e.t.TempDir()
	// generic-worker's config always names a signing key; the worker reads
	// it at start for its chainoftrust plugin.
	_, err := ed25519key.Generate(filepath.Join(dir, "signing.key"))
	require.NoError(e.t, err)
	wc := map[string]any{
		"tasksDir": filepath.Join(dir, "tasks"), "cachesDir": filepath.Join(dir, "caches"), "downloadsDir": filepath.Join(dir, "downloads"),
		"ed25519SigningKeyLocation": filepath.Join(dir, "signing.key"),
		"shutdownMachineOnIdle":     false,
	}
	for k, v := range runnerConfig {
		wc[k] = v
	}
	stderr := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wr, err := runnertest.StartStaticWorker(ctx, runnertest.StaticWorker{
		Client:       taskcluster.Client{RootURL: e.srv.URL, MaxElapsedTime: 5 * time.Second},
		WorkerPoolID: pool, WorkerGroup: runnerGroup, WorkerID: runnerID, StaticSecret: secret,
		WorkerConfig: wc, Path: workerBin, ConfigPath: filepath.Join(dir, "generic-worker.config"),
		Env:    []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), stateDirEnv()},
		Stderr: stderr, Options: runnertest.Options{Capabilities: capabilities},
	})
	require.NoError(e.t, err)
	e.t.Cleanup(func() {
		select {
		case <-wr.Done():
		default:
			_ = wr.CloseInput()
		}
	})
	return wr, stderr
}

// exitCode waits for the worker started by wr and returns its exit code.
func exitCode(t *testing.T, wr *runnertest.WorkerRunner, stderr *syncBuffer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- wr.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		require.NoError(t, err, "worker stderr:\n%s", stderr)
		return 0
	case <-time.After(3 * time.Minute):
		t.Fatalf("worker did not exit; stderr:\n%s", stderr)
		return -1
	}
}

// logTexts returns the textPayload of every `log` message so far.
func logTexts(wr *runnertest.WorkerRunner) []string {
	var out []string
	for _, m := range wr.Messages("log") {
		body, _ := m["body"].(map[string]any)
		s, _ := body["textPayload"].(string)
		out = append(out, s)
	}
	return out
}

func hasLog(wr *runnertest.WorkerRunner, substr string) bool {
	for _, s := range logTexts(wr) {
		if strings.Contains(s, substr) {
			return true
		}
	}
	return false
}

// checkProtocol asserts what every test expects of the protocol: the
// handshake agreed on every capability, no breach of the protocol, stdout
// carried nothing but messages, exactly one shutdown, after which
// worker-runner removed the worker.
func checkProtocol(t *testing.T, e *env, wr *runnertest.WorkerRunner) {
	t.Helper()
	caps, err := wr.Hello(context.Background())
	require.NoError(t, err)
	assert.ElementsMatch(t, runnertest.All, caps, "hello offers every capability generic-worker has")
	assert.Empty(t, wr.Violations())
	assert.Empty(t, wr.Output(), "nothing but protocol messages on the worker's stdout")
	assert.Len(t, wr.Messages("shutdown"), 1)
	assert.Empty(t, wr.CallErrors())
	w, err := e.queue.Worker(pool, runnerGroup, runnerID)
	require.NoError(t, err)
	assert.Equal(t, localqueue.WorkerStopped, w.State, "shutdown made worker-runner call removeWorker")
}

// TestRunnerNewCredentialsMidTask: worker-runner renews the worker's
// credentials while a task runs and the old ones are revoked at once; the
// task still reclaims (its claim lasts 3 s, the task 6 s), uploads and
// resolves, and the next claimWork is signed with the new credentials.
func TestRunnerNewCredentialsMidTask(t *testing.T) {
	e := newEnv(t, 3*time.Second)
	marker := filepath.Join(e.shared, "started")
	first := e.task(map[string]any{"command": sh(fmt.Sprintf("echo started; touch %s; sleep 6; echo done > out.txt", marker)), "maxRunTime": 60,
		"artifacts": []any{map[string]any{"type": "file", "path": "out.txt", "name": "public/out.txt"}}}, 0)
	second := e.task(map[string]any{"command": sh("echo second"), "maxRunTime": 60}, 0)
	wr, stderr := e.startRunner(nil, map[string]any{"numberOfTasksToRun": 2})

	eventually(t, "the first task to start", func() bool { _, err := os.Stat(marker); return err == nil })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old, renewed, err := wr.RenewCredentials(ctx)
	require.NoError(t, err)
	require.NoError(t, e.queue.RevokeCredentials(old))

	assert.Equal(t, 0, exitCode(t, wr, stderr), "numberOfTasksToRun reached; stderr:\n%s", stderr)
	assert.Equal(t, "completed", e.runState(first, 0), "stderr:\n%s", stderr)
	st, err := e.queue.Status(first)
	require.NoError(t, err)
	assert.Len(t, st.Runs, 1, "the claim was kept alive by reclaims")
	assert.Equal(t, "done\n", e.artifact(first, 0, "public/out.txt"))
	assert.Contains(t, e.artifact(first, 0, "public/logs/live_backing.log"), "started\n")
	assert.Equal(t, "completed", e.runState(second, 0), "claimed with the new credentials after the old ones were revoked")

	w, err := e.queue.Worker(pool, runnerGroup, runnerID)
	require.NoError(t, err)
	require.Len(t, w.Credentials, 2)
	assert.True(t, w.Credentials[0].Revoked)
	require.False(t, w.Credentials[1].FirstUsed.IsZero(), "the new credentials were used")
	assert.Equal(t, renewed.ClientID, w.Credentials[1].ClientID)
	sent := wr.SentMessages()
	require.Equal(t, "new-credentials", sent[len(sent)-1].Type)
	t.Logf("new-credentials (mid-task) to the first call signed with them: %v", w.Credentials[1].FirstUsed.Sub(sent[len(sent)-1].At))
	checkProtocol(t, e, wr)
	assert.True(t, hasLog(wr, "renewed the worker's credentials"), "logs: %q", logTexts(wr))
	assert.True(t, hasLog(wr, `"shutdownMachineOnIdle" is ignored`), "the ignored key is warned about once, over the protocol")
	claimed := 0
	for _, m := range wr.Messages("log") {
		if body := m["body"].(map[string]any); body["textPayload"] == "claimed task" {
			claimed++
			assert.Contains(t, []any{first, second}, body["taskId"], "slog fields are body fields")
			assert.Equal(t, "INFO", body["level"])
		}
	}
	assert.Equal(t, 2, claimed, "the worker's log went to worker-runner as log messages")
}

// TestRunnerGracefulTerminationMidTask: graceful-termination with
// finish-tasks false while a task runs resolves it
// exception/worker-shutdown, with its log uploaded, kills its processes,
// and exits 72.
func TestRunnerGracefulTerminationMidTask(t *testing.T) {
	e := newEnv(t, time.Minute)
	pidFile := filepath.Join(e.shared, "pids")
	id := e.task(map[string]any{"command": sh(fmt.Sprintf("echo running; echo $$ >> %s; sleep 600", pidFile)), "maxRunTime": 600}, 1)
	wr, stderr := e.startRunner(nil, nil)
	eventually(t, "the task to start", func() bool { return len(readPIDs(t, pidFile)) == 1 })

	start := time.Now()
	require.NoError(t, wr.GracefulTermination(false))
	code := exitCode(t, wr, stderr)
	elapsed := time.Since(start)
	assert.Equal(t, worker.ExitGracefulTermination, code, "stderr:\n%s", stderr)
	t.Logf("graceful-termination (finish-tasks false) to exit, one task running: %v", elapsed)
	assert.Equal(t, "exception/worker-shutdown", e.runState(id, 0))
	assert.Equal(t, "pending", e.runState(id, 1), "worker-shutdown makes a new run")
	assert.Contains(t, e.artifact(id, 0, "public/logs/live_backing.log"), "running\n")
	for _, pid := range readPIDs(t, pidFile) {
		assert.False(t, pidAlive(pid), "task process %d survived the worker", pid)
	}
	checkProtocol(t, e, wr)
}

// TestRunnerIdleAsksWorkerManager: at the idle timeout the worker asks
// shouldWorkerTerminate; told no, it keeps working (a new-credentials
// message then reaches its next claimWork); told yes, it exits 68.
func TestRunnerIdleAsksWorkerManager(t *testing.T) {
	e := newEnv(t, time.Minute)
	wr, stderr := e.startRunner(nil, map[string]any{"idleTimeoutSecs": 1})
	require.NoError(t, e.queue.SetShouldTerminate(pool, runnerGroup, runnerID, false, "still needed"))
	eventually(t, "worker-manager to be asked", func() bool { return hasLog(wr, "should keep working") })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err := wr.RenewCredentials(ctx)
	require.NoError(t, err)
	var first time.Time
	eventually(t, "a call signed with the new credentials", func() bool {
		w, err := e.queue.Worker(pool, runnerGroup, runnerID)
		require.NoError(t, err)
		first = w.Credentials[len(w.Credentials)-1].FirstUsed
		return len(w.Credentials) == 2 && !first.IsZero()
	})
	sent := wr.SentMessages()
	t.Logf("new-credentials (idle worker, 1 s long poll) to the first call signed with them: %v", first.Sub(sent[len(sent)-1].At))

	require.NoError(t, e.queue.SetShouldTerminate(pool, runnerGroup, runnerID, true, "pool is shrinking"))
	assert.Equal(t, worker.ExitIdle, exitCode(t, wr, stderr), "stderr:\n%s", stderr)
	assert.True(t, hasLog(wr, "confirms the idle worker should terminate"), "logs: %q", logTexts(wr))
	checkProtocol(t, e, wr)
}

// TestRunnerConfigError: a bad key in the pool's workerConfig is reported
// with error-report (a worker-pool error naming the key) and exits 73.
func TestRunnerConfigError(t *testing.T) {
	e := newEnv(t, time.Minute)
	wr, stderr := e.startRunner(map[string]any{"genericWorker": map[string]any{"config": map[string]any{"idleTimeoutSec": 5}}}, nil)
	assert.Equal(t, worker.ExitInvalidConfig, exitCode(t, wr, stderr), "stderr:\n%s", stderr)
	errs := e.queue.WorkerPoolErrors(pool)
	require.Len(t, errs, 1, "error-report became a worker-pool error")
	assert.Equal(t, "worker-error", errs[0].Kind)
	assert.Equal(t, "invalid worker config", errs[0].Title)
	assert.Contains(t, errs[0].Description, `key "idleTimeoutSec": not a generic-worker config key (did you mean "idleTimeoutSecs"?)`)
	assert.EqualValues(t, worker.ExitInvalidConfig, errs[0].Extra["exitCode"])
	checkProtocol(t, e, wr)
}

// TestRunnerWithoutLogCapability: a runner that does not take `log` gets
// only the capabilities it offered; the worker's log goes to stderr and
// stdout still carries nothing but messages.
func TestRunnerWithoutLogCapability(t *testing.T) {
	e := newEnv(t, time.Minute)
	wr, stderr := e.startRunner(map[string]any{"idleTimeoutSec": 5}, nil, "error-report", "shutdown")
	assert.Equal(t, worker.ExitInvalidConfig, exitCode(t, wr, stderr), "stderr:\n%s", stderr)
	caps, err := wr.Hello(context.Background())
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"error-report", "shutdown"}, caps)
	assert.Empty(t, wr.Messages("log"))
	assert.Contains(t, stderr.String(), "worker exiting")
	assert.Contains(t, stderr.String(), "idleTimeoutSec")
	assert.Empty(t, wr.Output())
	assert.Empty(t, wr.Violations())
	require.Len(t, e.queue.WorkerPoolErrors(pool), 1)
	assert.Len(t, wr.Messages("shutdown"), 1)
}

// TestRunnerProtocolPipeUnavailable: a protocol pipe that cannot be opened
// (there are none outside Windows) exits 78, as generic-worker.
func TestRunnerProtocolPipeUnavailable(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{}`), 0o600))
	out, err := exec.Command(workerBin, "run", "--config", cfg, "--with-worker-runner", "--worker-runner-protocol-pipe", `\\.\pipe\generic-worker`).CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "%v: %s", err, out)
	assert.Equal(t, worker.ExitProtocolPipe, exit.ExitCode())
	assert.Contains(t, string(out), "--worker-runner-protocol-pipe")
}
