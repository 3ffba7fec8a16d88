package env_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/env"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newPlugin(t *testing.T) plugins.Plugin {
	t.Helper()
	p, err := env.New(plugins.Options{})
	require.NoError(t, err)
	return p
}

func reasonOf(t *testing.T, err error) *task.ExceptionError {
	t.Helper()
	var ee *task.ExceptionError
	require.ErrorAs(t, err, &ee)
	return ee
}

func TestEnvAndWorkerVariables(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		RunID:   2,
		Worker:  task.WorkerInfo{RootURL: "https://tc.example.com"},
		Payload: map[string]any{
			"env":  map[string]string{"FOO": "bar", "EMPTY": "", "ODD": "a b\n\t$x 'q' \"\" é😀\u0001"},
			"mock": map[string]any{"printEnv": []string{"FOO", "TASK_ID"}},
		},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.Equal(t, map[string]string{
		"FOO":                  "bar",
		"EMPTY":                "",
		"ODD":                  "a b\n\t$x 'q' \"\" é😀\u0001",
		"TASK_ID":              plugintest.DefaultTaskID,
		"RUN_ID":               "2",
		"TASK_GROUP_ID":        plugintest.DefaultTaskID,
		"TASK_WORKDIR":         res.Context.TaskDir,
		"TASKCLUSTER_ROOT_URL": "https://tc.example.com",
	}, res.Env())
	assert.Contains(t, res.Log, "bar\n"+plugintest.DefaultTaskID+"\n")
}

func TestRunModeHasNoRootURL(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newPlugin(t)}})
	require.Empty(t, res.Errors)
	_, ok := res.Env()[env.VarRootURL]
	assert.False(t, ok, "TASKCLUSTER_ROOT_URL is not set without a deployment")
}

func TestPayloadRootURLPassesWithoutDeployment(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: map[string]any{"env": map[string]string{"TASKCLUSTER_ROOT_URL": "https://x.example"}},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, "https://x.example", res.Env()[env.VarRootURL])
}

func TestWorkerVariablesWin(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: map[string]any{"env": map[string]string{"TASK_ID": "mine", "RUN_ID": "7", "TASK_WORKDIR": "/nope"}},
	})
	require.Empty(t, res.Errors)
	e := res.Env()
	assert.Equal(t, plugintest.DefaultTaskID, e["TASK_ID"])
	assert.Equal(t, "0", e["RUN_ID"])
	assert.Equal(t, res.Context.TaskDir, e["TASK_WORKDIR"])
	assert.Contains(t, res.Log, `payload.env["TASK_ID"] is ignored`)
}

func TestHugeValuePassesUnchanged(t *testing.T) {
	huge := strings.Repeat("0123456789abcdef", 1<<16) + "\u00fe\n=end\u0007" // 1 MiB and odd bytes
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: map[string]any{"env": map[string]string{"HUGE": huge}},
	})
	require.Empty(t, res.Errors)
	assert.True(t, res.Env()["HUGE"] == huge, "value changed")
}

func TestInvalidNamesAreMalformedPayload(t *testing.T) {
	for _, tt := range []struct {
		name, want string
	}{
		{"A=B", `payload.env["A=B"]`},
		{"", `payload.env[""]`},
		{"NUL\x00X", `payload.env["NUL\x00X"]`},
	} {
		res := plugintest.Run(t, plugintest.Case{
			Plugins: []plugins.Plugin{newPlugin(t)},
			Payload: map[string]any{"env": map[string]string{tt.name: "v", "OK": "fine"}},
		})
		err := res.Err(plugintest.StageNewTaskPlugin)
		require.Error(t, err, "name %q", tt.name)
		ee := reasonOf(t, err)
		assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
		require.Len(t, ee.Reasons, 1)
		assert.Contains(t, ee.Reasons[0], tt.want)
		assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution)
	}
}

func TestNULValueIsMalformedPayload(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: map[string]any{"env": map[string]string{"X": "a\x00b"}},
	})
	ee := reasonOf(t, res.Err(plugintest.StageNewTaskPlugin))
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, ee.Reasons[0], `payload.env["X"]: value contains a NUL byte`)
}

func TestWrongShapeIsMalformedPayload(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: `{"env": {"X": 3}}`,
	})
	ee := reasonOf(t, res.Err(plugintest.StageNewTaskPlugin))
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, ee.Reasons[0], "payload.env")
}

// conflicting sets X on the builder first, like another plugin would.
type conflicting struct{}

func (conflicting) NewTaskPlugin(_ context.Context, _ *task.Context) (plugins.TaskPlugin, error) {
	return conflictingTask{}, nil
}
func (conflicting) Close() error { return nil }

type conflictingTask struct{ plugins.Base }

func (conflictingTask) BuildSandbox(_ context.Context, b engines.SandboxBuilder) error {
	return b.SetEnv("X", "from another plugin")
}

func TestConflictIsMalformedPayload(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{conflicting{}, newPlugin(t)},
		Payload: map[string]any{"env": map[string]string{"X": "mine"}},
	})
	ee := reasonOf(t, res.Err(plugintest.StageBuildSandbox))
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, ee.Reasons[0], `payload.env["X"]: conflicts`)
}

func TestEngineRefusalIsMalformedPayload(t *testing.T) {
	// An engine stricter than the contract's minimum (e.g. Windows refuses
	// some names) answers ErrInvalidEnvName from SetEnv.
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Engine:  strictEngine{},
		Payload: map[string]any{"env": map[string]string{"BAD-NAME": "v"}},
	})
	ee := reasonOf(t, res.Err(plugintest.StageBuildSandbox))
	assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	assert.Contains(t, ee.Reasons[0], `payload.env["BAD-NAME"]`)
}

func TestConfig(t *testing.T) {
	for _, c := range []string{``, `null`, `{}`} {
		_, err := env.New(plugins.Options{Config: json.RawMessage(c)})
		assert.NoError(t, err, "config %q", c)
	}
	_, err := env.New(plugins.Options{Config: json.RawMessage(`{"x":1}`)})
	assert.Error(t, err)
}

func TestWorkerVariablesWinCaseInsensitivelyOnWindows(t *testing.T) {
	defer env.SetFoldCase(true)()
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: map[string]any{"env": map[string]string{"task_id": "mine", "Path": `C:\bin`}},
	})
	require.Empty(t, res.Errors)
	e := res.Env()
	assert.Equal(t, plugintest.DefaultTaskID, e["TASK_ID"])
	assert.NotContains(t, e, "task_id")
	assert.Equal(t, `C:\bin`, e["Path"])
	assert.Contains(t, res.Log, `payload.env["task_id"] is ignored: the worker sets TASK_ID`)
}
