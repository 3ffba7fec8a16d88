//go:build linux

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/worker"
)

// TestCorpusPosixTasksResolve runs every generic-worker posix task of the
// shared corpus of real task definitions with `run` on the linux-native
// worker. Most need the internet or features the profile lacks; each must
// still end in one clear resolution (exit 0 completed, 1 failed, 64
// malformed-payload, 2 another exception), with the cause in the log, and
// never crash or hang.
func TestCorpusPosixTasksResolve(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", "shared", "corpus", "real-tasks"))
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(root, "*.json"))
	require.NoError(t, err)
	if len(files) == 0 {
		t.Skipf("no corpus at %s", root)
	}
	ran := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var head struct {
			Worker string `json:"x-worker"`
		}
		require.NoError(t, json.Unmarshal(data, &head))
		if head.Worker != "generic-worker-posix" {
			continue
		}
		ran++
		t.Run(filepath.Base(f), func(t *testing.T) {
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, workerBin, "run", "--output", out, f)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), stateDirEnv()}
			cmd.Dir = t.TempDir() // the worker's default tasks, caches and downloads directories
			stdout, err := cmd.CombinedOutput()
			require.NoError(t, ctx.Err(), "the task hung")
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			require.Contains(t, []int{worker.ExitCompleted, worker.ExitFailed, worker.ExitException, worker.ExitUsage}, code, "exit code; output:\n%s", stdout)

			var m struct {
				Resolution string   `json:"resolution"`
				Reasons    []string `json:"reasons"`
			}
			data, err := os.ReadFile(filepath.Join(out, "manifest.json"))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(data, &m))
			log, err := os.ReadFile(filepath.Join(out, "task.log"))
			require.NoError(t, err)
			assert.Equal(t, 1, strings.Count(string(log), "resolution: "), "exactly one resolution in the log")
			switch {
			case m.Resolution == "completed":
			case m.Resolution == "failed":
				assert.Contains(t, string(log), "exit code: ", "the failing exit code is in the log")
			case strings.HasPrefix(m.Resolution, "exception/"):
				require.NotEmpty(t, m.Reasons)
				for _, r := range m.Reasons {
					assert.Contains(t, string(log), strings.TrimPrefix(r, "malformed-payload: "), "the reason is in the log")
				}
				if m.Resolution == "exception/malformed-payload" {
					assert.Contains(t, strings.Join(m.Reasons, "\n"), "payload", "the reason names the field")
					assert.Equal(t, worker.ExitUsage, code, "a malformed payload is bad input")
				}
			default:
				t.Fatalf("unexpected resolution %q", m.Resolution)
			}
			t.Logf("%s: %s %v", filepath.Base(f), m.Resolution, m.Reasons)
		})
	}
	assert.Positive(t, ran)
}

// TestWorkerLinesFollowTaskOutput checks that a line the worker writes when
// a command ends never overtakes what the command printed just before.
func TestWorkerLinesFollowTaskOutput(t *testing.T) {
	dir := t.TempDir()
	taskFile := filepath.Join(dir, "task.json")
	require.NoError(t, os.WriteFile(taskFile, []byte(`{"payload": {"maxRunTime": 30, "command": [
		["/bin/sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; echo last >&2; exit 3"],
		["/bin/echo", "never runs"]]}}`), 0o644))
	for i := range 10 {
		out := filepath.Join(dir, strconv.Itoa(i))
		_ = exec.Command(workerBin, "run", "--output", out, taskFile).Run()
		log, err := os.ReadFile(filepath.Join(out, "task.log"))
		require.NoError(t, err)
		last := strings.Index(string(log), "last\n")
		exited := strings.Index(string(log), "exited with code 3")
		require.True(t, last >= 0 && exited >= 0, "log:\n%s", log)
		require.Less(t, last, exited, "run %d: the exit line overtook the output:\n%s", i, log)
	}
}
