package maxruntime

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

// TestNativeKillTreeAndCollectArtifacts runs a real process tree under the
// native engine: the task writes a file, starts a background grandchild and
// sleeps. maxRunTime kills the whole tree, the run fails and the file is
// still published.
func TestNativeKillTreeAndCollectArtifacts(t *testing.T) {
	eng, err := native.New(engines.Options{})
	require.NoError(t, err)
	defer eng.Close()
	// One "second" is 250ms: the task is killed after 5s of wall time,
	// ample for the shell to start its background child on a loaded
	// machine (the script waits for it before sleeping).
	mr, err := newPlugin(plugins.Options{}, realClock{}, 250*time.Millisecond)
	require.NoError(t, err)
	ap, err := artifacts.New(plugins.Options{})
	require.NoError(t, err)
	script := `mkdir -p out && echo partial > out/result.txt && (sleep 600 & echo $! > out/bg.pid; wait) & while [ ! -s out/bg.pid ]; do sleep 0.05; done; echo started; sleep 600`
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{mr, ap},
		Engine:  eng,
		Payload: map[string]any{
			"command":    [][]string{{"sh", "-c", script}},
			"maxRunTime": 20,
			"artifacts":  []any{map[string]any{"type": "directory", "path": "out", "name": "public/out"}},
		},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Failed, res.Resolution.State)
	require.NotNil(t, res.TaskResult)
	assert.True(t, res.TaskResult.Killed())
	assert.Contains(t, res.Log, "maxRunTime of 20 seconds exceeded; task killed")
	a, ok := res.Artifact("public/out/result.txt")
	require.True(t, ok, "artifacts collected after the kill: %v", res.ArtifactNames())
	assert.Equal(t, "partial\n", string(a.Content))
	assert.Contains(t, res.Log, "started\n")

	pidText, err := os.ReadFile(filepath.Join(res.Context.TaskDir, "out", "bg.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	require.NoError(t, err)
	// The engine kills the tree before Wait returns; allow the kernel a
	// moment to finish tearing it down (polling, not a fixed sleep).
	require.Eventually(t, func() bool {
		return syscall.Kill(pid, 0) == syscall.ESRCH || isZombie(pid)
	}, 30*time.Second, 20*time.Millisecond, "background grandchild %d survived the kill", pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}
