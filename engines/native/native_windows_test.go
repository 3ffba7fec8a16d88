package native_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/enginetest"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/task"
)

// Runs only on Windows (CI): the .bat wrapping carries the environment and
// the working directory from one command to the next, the first non-zero
// errorlevel ends the task, and Kill ends the job's whole process tree.

func runWindows(t *testing.T, lines []string, env map[string]string) (engines.ResultSet, string, string) {
	t.Helper()
	e, err := native.New(engines.Options{})
	require.NoError(t, err)
	payload, err := json.Marshal(map[string]any{"command": lines})
	require.NoError(t, err)
	dir := t.TempDir()
	lb := enginetest.NewLogBuffer()
	tc := &task.Context{TaskID: "W", TaskDir: dir, Log: task.NewLog(lb), Definition: task.Definition{Payload: payload}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := e.NewSandboxBuilder(ctx, tc)
	require.NoError(t, err)
	for k, v := range env {
		require.NoError(t, b.SetEnv(k, v))
	}
	s, err := b.Start(ctx)
	require.NoError(t, err)
	rs, err := s.Wait(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rs.Dispose() })
	return rs, string(lb.Bytes()), dir
}

func TestWindowsCarryOver(t *testing.T) {
	rs, log, dir := runWindows(t, []string{
		"set CARRIED=from first command",
		"mkdir sub && cd sub",
		"echo value=%CARRIED% & echo payload=%FROM_PAYLOAD% & cd",
		"exit /b 7",
		"echo never",
	}, map[string]string{"FROM_PAYLOAD": "a b=c;d,e"})
	assert.Equal(t, 7, rs.ExitCode())
	assert.Contains(t, log, "value=from first command")
	assert.Contains(t, log, "payload=a b=c;d,e")
	assert.Contains(t, log, filepath.Join(dir, "sub"))
	assert.NotContains(t, strings.ReplaceAll(log, "echo never", ""), "never")
	_, err := os.Stat(filepath.Join(dir, "sub"))
	assert.NoError(t, err)
}
