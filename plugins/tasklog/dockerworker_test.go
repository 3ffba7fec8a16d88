package tasklog_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/plugins/tasklog"
	"github.com/workergen/workergen/task"
)

func newDockerWorkerPlugin(t *testing.T, config string) plugins.Plugin {
	t.Helper()
	p, err := tasklog.New(plugins.Options{Config: json.RawMessage(config), Dialect: task.DialectDockerWorker})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func runDW(t *testing.T, payload M) *plugintest.Result {
	t.Helper()
	return plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newDockerWorkerPlugin(t, `{}`)},
		Payload: payload,
	})
}

// BackingName follows docker-worker's logs_location.js (Node path.parse).
func TestBackingName(t *testing.T) {
	for live, want := range map[string]string{
		"public/logs/live.log": "public/logs/live_backing.log",
		"apple/banana.log.txt": "apple/banana.log_backing.txt",
		"apple/banana.log":     "apple/banana_backing.log",
		"public/logs/live":     "public/logs/live_backing",
		"public/.hidden":       "public/.hidden_backing",
		"public/.hidden.txt":   "public/.hidden_backing.txt",
		"live.log":             "live_backing.log",
		"public/dir.d/live":    "public/dir.d/live_backing",
	} {
		assert.Equal(t, want, tasklog.BackingName(live), live)
	}
}

func TestDockerWorkerDefaults(t *testing.T) {
	res := runDW(t, M{"features": M{"allowPtrace": true}})
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{tasklog.DefaultLiveName, tasklog.DefaultBackingName}, res.ArtifactNames())
	live, _ := res.Artifact(tasklog.DefaultLiveName)
	assert.Equal(t, tasklog.DefaultBackingName, live.LinkTo)
	assert.NotContains(t, res.Log, "features.localLiveLog")
}

func TestDockerWorkerCustomLogName(t *testing.T) {
	// generic-worker's `logs` is not read for docker-worker payloads.
	res := runDW(t, M{"log": "apple/banana.log", "logs": M{"live": "ignored"}})
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{"apple/banana.log", "apple/banana_backing.log"}, res.ArtifactNames())
	live, _ := res.Artifact("apple/banana.log")
	assert.Equal(t, task.ArtifactLink, live.Kind)
	assert.Equal(t, "apple/banana_backing.log", live.LinkTo)
}

func TestDockerWorkerLogFeatures(t *testing.T) {
	res := runDW(t, M{"features": M{"localLiveLog": true, "bulkLog": true}})
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{tasklog.DefaultLiveName, tasklog.DefaultBackingName, tasklog.BulkLogName}, res.ArtifactNames())
	bulk, _ := res.Artifact(tasklog.BulkLogName)
	assert.Equal(t, task.ArtifactFile, bulk.Kind)
	assert.Equal(t, "gzip", bulk.ContentEncoding)
	assert.Equal(t, tasklog.ContentType, bulk.ContentType)
	assert.Contains(t, string(bulk.Content), "resolution: completed")
	assert.Contains(t, res.Log, "features.localLiveLog: this worker does not stream live logs")

	res = runDW(t, M{"features": M{"localLiveLog": false, "bulkLog": true}})
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{tasklog.BulkLogName}, res.ArtifactNames())

	res = runDW(t, M{"features": M{"localLiveLog": false}})
	require.Empty(t, res.Errors)
	assert.Empty(t, res.ArtifactNames())
	assert.Contains(t, res.Log, "no task log artifact will be published")
}

func TestDockerWorkerLiveLogStreams(t *testing.T) {
	p := newDockerWorkerPlugin(t, `{"liveLog": {"listenAddress": "127.0.0.1:0"}}`)
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{p}, Payload: M{"log": "public/x.log", "features": M{"localLiveLog": true}}})
	require.Empty(t, res.Errors)
	assert.NotContains(t, res.Log, "does not stream live logs")
	var kinds []task.ArtifactKind
	for _, a := range res.Artifacts {
		if a.Name == "public/x.log" {
			kinds = append(kinds, a.Kind)
		}
	}
	assert.Equal(t, []task.ArtifactKind{task.ArtifactReference, task.ArtifactLink}, kinds)
}

func TestDockerWorkerMalformed(t *testing.T) {
	for _, payload := range []M{
		{"log": "/abs.log"},
		{"log": "public/../x.log"},
		{"log": 3},
		{"features": M{"bulkLog": "yes"}},
	} {
		res := runDW(t, payload)
		var ee *task.ExceptionError
		require.ErrorAs(t, res.Err(plugintest.StageNewTaskPlugin), &ee, "%v", payload)
		assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
	}
	// The dialect is the profile's (Options.Dialect), not a config key.
	_, err := tasklog.New(plugins.Options{Config: json.RawMessage(`{"dialect": "docker-worker"}`)})
	require.ErrorContains(t, err, `unknown field "dialect"`)
}
