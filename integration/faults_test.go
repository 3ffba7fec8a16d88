//go:build linux || darwin

package integration

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/workergen/workergen/worker"
)

// Fault injection: e.fault is a loopback proxy between the worker and the
// embedded Queue that stalls, refuses or slows chosen requests.

func (e *env) setFault(f func(http.ResponseWriter, *http.Request) bool) { e.fault.Store(&f) }

// TestFirstReclaimStallsClaimKept: the first reclaimTask hangs (the proxy
// never answers it), with the worker's default reclaimMargin. Each reclaim
// attempt is bounded by a third of what is left of the claim, so the
// stalled attempt is abandoned and the next one keeps the claim: the run
// completes instead of ending claim-expired.
func TestFirstReclaimStallsClaimKept(t *testing.T) {
	e := newEnv(t, 15*time.Second)
	var reclaims atomic.Int32
	e.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/reclaim") || reclaims.Add(1) > 1 {
			return false
		}
		<-r.Context().Done() // stall until the client gives up
		return true
	})
	id := e.task(map[string]any{"command": sh("sleep 14; echo done"), "maxRunTime": 600}, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 1})
	e.wait(cmd, out)
	assert.GreaterOrEqual(t, reclaims.Load(), int32(2), "worker output:\n%s", out)
	assert.Equal(t, "completed", e.runState(id, 0), "worker output:\n%s", out)
}

// TestReportCompleted401Once: reportCompleted answers 401 once. The worker
// retries with its own credentials (403 here: they lack
// queue:resolve-task), then with fresh task credentials from a reclaim,
// and the run ends completed rather than claim-expired.
func TestReportCompleted401Once(t *testing.T) {
	e := newEnv(t, time.Minute)
	var refused atomic.Int32
	e.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/completed") || refused.Add(1) > 1 {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code": "AuthenticationFailed", "message": "injected by the test"}`)
		return true
	})
	id := e.task(map[string]any{"command": sh("echo hello"), "maxRunTime": 600}, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 1})
	e.wait(cmd, out)
	assert.Equal(t, int32(3), refused.Load(), "refused (task credentials), refused (worker credentials: no queue:resolve-task), accepted (fresh task credentials)")
	assert.Equal(t, "completed", e.runState(id, 0), "worker output:\n%s", out)
	assert.Contains(t, out.String(), "retrying with the worker's own")
}

// TestSIGTERMDuringSlowUpload: SIGTERM arrives while a 100 MB artifact is
// being uploaded through a proxy that lets 64 KiB through every 100 ms
// (the upload would take minutes). With shutdownGracePeriod 5 s the
// worker cuts the upload at the deadline, resolves the run
// exception/worker-shutdown and exits within grace + 5 s.
func TestSIGTERMDuringSlowUpload(t *testing.T) {
	e := newEnv(t, time.Minute)
	uploading := make(chan struct{})
	var once atomic.Bool
	e.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/_localqueue/put/") {
			return false
		}
		if once.CompareAndSwap(false, true) {
			close(uploading)
		}
		buf := make([]byte, 64<<10)
		for {
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
			select {
			case <-r.Context().Done():
				return true
			case <-time.After(100 * time.Millisecond):
			}
		}
		w.WriteHeader(http.StatusOK)
		return true
	})
	id := e.task(map[string]any{
		"command":    sh("head -c 100000000 /dev/urandom > big.bin"),
		"maxRunTime": 600,
		"artifacts":  []any{map[string]any{"type": "file", "path": "big.bin", "name": "public/big.bin"}},
	}, 1)
	cmd, out := e.start(map[string]any{"shutdownGracePeriod": 5})
	select {
	case <-uploading:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the upload never started; worker output:\n%s", out)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	sent := time.Now()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		// generic-worker's exit code for an interrupt signal (usage.mdx).
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "worker output:\n%s", out)
		assert.Equal(t, worker.ExitSignal, exit.ExitCode(), "worker output:\n%s", out)
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("worker still running 10 s (grace + 5 s) after SIGTERM; output:\n%s", out)
	}
	t.Logf("SIGTERM to exit: %v", time.Since(sent))
	assert.Equal(t, "exception/worker-shutdown", e.runState(id, 0), "worker output:\n%s", out)
	assert.Regexp(t, `SIGTERM received: no new claims; 1 tasks running; exit by \d\d:\d\d:\d\d`, out.String())
}
