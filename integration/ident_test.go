package integration

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runWorkBinary runs the linux-native binary's `work` with cfg as its
// config, bounded by a generous deadline, and returns the exit code, the
// output and how long it ran.
func runWorkBinary(t *testing.T, cfg map[string]any) (int, string, time.Duration) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "worker.json")
	data, _ := json.Marshal(cfg)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	cmd := exec.Command(workerBin, "work", "--config", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), stateDirEnv()}
	start := time.Now()
	timer := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out), took
	}
	require.NoError(t, err, "%s", out)
	return 0, string(out), took
}

// The acceptance of `work`'s identity and start-up check, on the real
// binary: a config without workerId exits 73 naming it; a rootUrl that
// refuses connections exits 73 within the start-up check's bound naming
// it; the first log line names the tasks directory under stateDir.
func TestWorkIdentityAndStartupCheck(t *testing.T) {
	e := newEnv(t, time.Minute)
	base := func() map[string]any {
		return map[string]any{
			"rootUrl": e.srv.URL, "credentials": map[string]string{"clientId": clientID, "accessToken": token},
			"workerPoolId": pool, "workerGroup": "it", "workerId": "it-1",
			"stateDir": filepath.Join(t.TempDir(), "state"), "idleTimeout": 1,
		}
	}

	cfg := base()
	delete(cfg, "workerId")
	code, out, _ := runWorkBinary(t, cfg)
	assert.Equal(t, 73, code, out)
	assert.Contains(t, out, "config.workerId: required for work")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refusing := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	cfg = base()
	cfg["rootUrl"] = refusing
	code, out, took := runWorkBinary(t, cfg)
	assert.Equal(t, 73, code, out)
	assert.Contains(t, out, "rootUrl "+refusing)
	assert.Contains(t, out, "connection refused")
	t.Logf("FIGURE work with a refusing rootUrl, start to exit (real binary): %s", took.Round(10*time.Millisecond))

	cfg = base()
	code, out, _ = runWorkBinary(t, cfg)
	assert.Equal(t, 68, code, out)
	first, _, _ := strings.Cut(out, "\n")
	tasksDir := filepath.Join(cfg["stateDir"].(string), "tasks")
	assert.Contains(t, first, "tasksDir="+tasksDir, "the first log line names the tasks directory")
	assert.DirExists(t, filepath.Join(tasksDir, ".journal"))
}
