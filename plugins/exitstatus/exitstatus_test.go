package exitstatus_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/exitstatus"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func run(t *testing.T, payload any) *plugintest.Result {
	t.Helper()
	p, err := exitstatus.New(plugins.Options{})
	require.NoError(t, err)
	return plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{p}, Payload: payload})
}

func payload(exitCode int, extra map[string]any) map[string]any {
	p := map[string]any{
		"mock":         map[string]any{"exitCode": exitCode},
		"onExitStatus": map[string]any{"retry": []int{1073807364, 3221225786, 75}, "purgeCaches": []int{72, 75}},
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func TestRetryCodeIsIntermittentTask(t *testing.T) {
	for _, code := range []int{1073807364, 3221225786} { // Windows codes from real tasks, beyond int32
		res := run(t, payload(code, nil))
		assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonIntermittentTask}, res.Resolution, "code %d", code)
		var ee *task.ExceptionError
		require.ErrorAs(t, res.Err(plugintest.StageStopped), &ee)
		assert.Equal(t, []string{"exit code " + itoa(code) + " is listed in payload.onExitStatus.retry"}, ee.Reasons)
		assert.Nil(t, res.Context.Value(task.PurgeCachesKey{}))
	}
}

func TestPurgeCachesCode(t *testing.T) {
	res := run(t, payload(72, nil))
	assert.Equal(t, task.Failed, res.Resolution.State, "purging does not change the resolution")
	assert.Equal(t, true, res.Context.Value(task.PurgeCachesKey{}))
	assert.Contains(t, res.Log, "exit code 72 is listed in payload.onExitStatus.purgeCaches")
}

func TestCodeInBothLists(t *testing.T) {
	res := run(t, payload(75, nil))
	assert.Equal(t, task.ReasonIntermittentTask, res.Resolution.Reason)
	assert.Equal(t, true, res.Context.Value(task.PurgeCachesKey{}))
}

func TestUnlistedCodeFails(t *testing.T) {
	res := run(t, payload(3, nil))
	assert.Equal(t, task.Resolution{State: task.Failed}, res.Resolution)
	assert.Empty(t, res.Errors)
	assert.Nil(t, res.Context.Value(task.PurgeCachesKey{}))
}

func TestZeroExit(t *testing.T) {
	res := run(t, payload(0, nil))
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.Nil(t, res.Context.Value(task.PurgeCachesKey{}))

	// Upstream allows 0 in purgeCaches and purges after a successful task.
	p := payload(0, nil)
	p["onExitStatus"] = map[string]any{"purgeCaches": []int{0}}
	res = run(t, p)
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.Equal(t, true, res.Context.Value(task.PurgeCachesKey{}))
}

func TestKilledTaskIsNotRetried(t *testing.T) {
	// A killed task reports exit code -1; a list can never hold it, and the
	// plugin checks Killed() first anyway.
	p := payload(0, nil)
	p["mock"] = map[string]any{"sleep": "forever", "exitCode": 75}
	killer, err := killOnStart()
	require.NoError(t, err)
	es, err := exitstatus.New(plugins.Options{})
	require.NoError(t, err)
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{killer, es}, Payload: p})
	assert.Equal(t, task.Failed, res.Resolution.State)
	assert.Nil(t, res.Context.Value(task.PurgeCachesKey{}))
}

func TestInvalidLists(t *testing.T) {
	for _, bad := range []string{
		`{"onExitStatus": {"retry": [0]}}`,
		`{"onExitStatus": {"purgeCaches": [-1]}}`,
		`{"onExitStatus": {"retry": ["1"]}}`,
		`{"onExitStatus": [1]}`,
	} {
		res := run(t, bad)
		var ee *task.ExceptionError
		require.ErrorAs(t, res.Err(plugintest.StageNewTaskPlugin), &ee, bad)
		assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
		assert.Contains(t, ee.Error(), "payload.onExitStatus", bad)
	}
}
