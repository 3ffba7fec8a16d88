package stamp_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"

	"example.com/tcstamp/stamp"
)

// The plugin, driven through every stage by workergen's own stage runner,
// stamps the log and the task's environment.
func TestStampsLogAndEnv(t *testing.T) {
	p, err := stamp.New(plugins.Options{Config: json.RawMessage(`{"label": "ci"}`)})
	require.NoError(t, err)
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{p},
		TaskID:  "fSX7BJxeTBeZ7VPAV6yvRg",
		RunID:   2,
		Payload: map[string]any{"stamp": "nightly"},
	})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	require.Contains(t, res.Log, "stamp: ci stamped task fSX7BJxeTBeZ7VPAV6yvRg run 2: nightly\n")
	require.Equal(t, "ci/fSX7BJxeTBeZ7VPAV6yvRg/2", res.Env()[stamp.EnvVar])
}

// Without config or note: the default label, no note.
func TestDefaults(t *testing.T) {
	p, err := stamp.New(plugins.Options{})
	require.NoError(t, err)
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{p}})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	require.Contains(t, res.Log, "stamp: tcstamp stamped task fSX7BJxeTBeZ7VPAV6yvRg run 0\n")
	require.Equal(t, "tcstamp/fSX7BJxeTBeZ7VPAV6yvRg/0", res.Env()[stamp.EnvVar])
}

// A note of the wrong type is malformed-payload naming the field.
func TestBadPayload(t *testing.T) {
	p, err := stamp.New(plugins.Options{})
	require.NoError(t, err)
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{p}, Payload: map[string]any{"stamp": 3}})
	require.Equal(t, task.Exception, res.Resolution.State)
	require.ErrorContains(t, res.Exception, "payload.stamp")
}

// Unknown config keys are refused.
func TestBadConfig(t *testing.T) {
	_, err := stamp.New(plugins.Options{Config: json.RawMessage(`{"lable": "x"}`)})
	require.ErrorContains(t, err, "lable")
}
