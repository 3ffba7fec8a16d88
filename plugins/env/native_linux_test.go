package env_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func nativeEngine(t *testing.T) engines.Engine {
	t.Helper()
	e, err := native.New(engines.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// TestNativeValuesPassExactly hands a large value with shell-special bytes to
// a real process and compares what it got byte for byte.
func TestNativeValuesPassExactly(t *testing.T) {
	big := strings.Repeat("x$`\\\"' \t;|&*?[]{}()<>~#!%\n", 3000) + "é😀" // ~78 KiB
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Engine:  nativeEngine(t),
		Payload: map[string]any{
			"env":     map[string]string{"BIG": big, "EMPTY": ""},
			"command": [][]string{{"sh", "-c", `printf '%s' "$BIG" > big.txt; printf '%s|%s|%s|%s|%s' "$TASK_ID" "$RUN_ID" "$TASK_GROUP_ID" "$TASK_WORKDIR" "${EMPTY-unset}" > ids.txt`}},
		},
	})
	require.Empty(t, res.Errors)
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	got, err := os.ReadFile(filepath.Join(res.Context.TaskDir, "big.txt"))
	require.NoError(t, err)
	assert.True(t, string(got) == big, "value changed on its way to the task (%d bytes, want %d)", len(got), len(big))
	ids, err := os.ReadFile(filepath.Join(res.Context.TaskDir, "ids.txt"))
	require.NoError(t, err)
	assert.Equal(t, plugintest.DefaultTaskID+"|0|"+plugintest.DefaultTaskID+"|"+res.Context.TaskDir+"|", string(ids))
}

// TestNativeOversizedValueIsMalformedPayload: a value beyond what Linux can
// pass to a new process (128 KiB per variable) names the variable.
func TestNativeOversizedValueIsMalformedPayload(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Engine:  nativeEngine(t),
		Payload: map[string]any{
			"env":     map[string]string{"HUGE": strings.Repeat("v", 1<<20)},
			"command": [][]string{{"true"}},
		},
	})
	ee := reasonOf(t, res.Err(plugintest.StageBuildSandbox))
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, ee.Reasons[0], `payload.env["HUGE"]`)
}
