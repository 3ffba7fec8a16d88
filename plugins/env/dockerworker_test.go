package env_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/env"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func newDockerWorkerPlugin(t *testing.T) plugins.Plugin {
	t.Helper()
	p, err := env.New(plugins.Options{Dialect: task.DialectDockerWorker})
	require.NoError(t, err)
	return p
}

// docker-worker payloads get docker-worker's variables (task.js
// dockerConfig), never the host's task directory.
func TestDockerWorkerVariables(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newDockerWorkerPlugin(t)},
		RunID:   1,
		Worker: task.WorkerInfo{RootURL: "https://tc.example.com", WorkerPoolID: "proj/linux-podman",
			WorkerGroup: "us-east-1", WorkerID: "i-1"},
		Payload: map[string]any{"env": map[string]string{"FOO": "bar", "TASK_ID": "mine", "TASKCLUSTER_WORKER_TYPE": "x"}},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.Equal(t, map[string]string{
		"FOO":                      "bar",
		"TASK_ID":                  plugintest.DefaultTaskID,
		"RUN_ID":                   "1",
		"TASKCLUSTER_ROOT_URL":     "https://tc.example.com",
		"TASKCLUSTER_WORKER_TYPE":  "linux-podman",
		"TASKCLUSTER_WORKER_GROUP": "us-east-1",
	}, res.Env())
	assert.Contains(t, res.Log, `payload.env["TASK_ID"] is ignored`)
	assert.Contains(t, res.Log, `payload.env["TASKCLUSTER_WORKER_TYPE"] is ignored`)
}

// Without a deployment (run mode) only what is known is set, and the
// payload may then set the others.
func TestDockerWorkerVariablesRunMode(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newDockerWorkerPlugin(t)},
		Payload: map[string]any{"env": map[string]string{"TASK_WORKDIR": "/work"}},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, map[string]string{
		"TASK_ID":      plugintest.DefaultTaskID,
		"RUN_ID":       "0",
		"TASK_WORKDIR": "/work",
	}, res.Env())
}

// The dialect is the profile's (Options.Dialect), not a config key.
func TestDialectNotInConfig(t *testing.T) {
	_, err := env.New(plugins.Options{Config: json.RawMessage(`{"dialect": "docker-worker"}`)})
	require.ErrorContains(t, err, `unknown field "dialect"`)
	_, err = env.New(plugins.Options{Dialect: task.DialectGenericWorkerPosix})
	require.NoError(t, err)
}
