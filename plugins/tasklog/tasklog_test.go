package tasklog_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/env"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/plugins/tasklog"
	"github.com/workergen/workergen/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type M = map[string]any

func newPlugin(t *testing.T) plugins.Plugin {
	t.Helper()
	p, err := tasklog.New(plugins.Options{})
	require.NoError(t, err)
	return p
}

func TestPublishesBackingLogAndLiveLink(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: M{"mock": M{"output": "task output without newline"}},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{tasklog.DefaultLiveName, tasklog.DefaultBackingName}, res.ArtifactNames())
	backing, _ := res.Artifact(tasklog.DefaultBackingName)
	assert.Equal(t, task.ArtifactFile, backing.Kind)
	assert.Equal(t, "text/plain; charset=utf-8", backing.ContentType)
	assert.Equal(t, "gzip", backing.ContentEncoding)
	assert.Equal(t, res.Context.Definition.Expires, backing.Expires)
	assert.Equal(t, res.Context.LogPath, backing.Path)
	assert.Contains(t, string(backing.Content), "task output without newline\n[workergen ")
	assert.Contains(t, string(backing.Content), "resolution: completed", "the footer is in the published log")
	live, _ := res.Artifact(tasklog.DefaultLiveName)
	assert.Equal(t, task.ArtifactLink, live.Kind)
	assert.Equal(t, tasklog.DefaultBackingName, live.LinkTo)
	assert.Equal(t, res.Context.Definition.Expires, live.Expires)
	// The link is published after its target.
	assert.Equal(t, tasklog.DefaultBackingName, res.Artifacts[0].Name)
}

func TestCustomNames(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: M{"logs": M{"live": "public/my/live.txt", "backing": "private/full.log"}},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{"private/full.log", "public/my/live.txt"}, res.ArtifactNames())
	live, _ := res.Artifact("public/my/live.txt")
	assert.Equal(t, "private/full.log", live.LinkTo)
}

func TestFeatureFlags(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: M{"features": M{"backingLog": false, "taskclusterProxy": true}},
	})
	require.Empty(t, res.Errors)
	assert.Empty(t, res.Artifacts, "no backing log, nothing to link to")

	res = plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: M{"features": M{"liveLog": false}},
	})
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{tasklog.DefaultBackingName}, res.ArtifactNames())
}

func TestExceptionRunPublishesLog(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: M{"mock": M{"error": M{"stage": "start", "reason": "resource-unavailable", "message": "no disk"}}},
	})
	assert.Equal(t, task.ReasonResourceUnavailable, res.Resolution.Reason)
	require.NoError(t, res.Err(plugintest.StageException))
	backing, ok := res.Artifact(tasklog.DefaultBackingName)
	require.True(t, ok)
	assert.Contains(t, string(backing.Content), "no disk")
}

func TestRunEndedEarlyUsesPayloadNames(t *testing.T) {
	envp, err := env.New(plugins.Options{})
	require.NoError(t, err)
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{envp, newPlugin(t)},
		Payload: M{"env": M{"A=B": "x"}, "logs": M{"backing": "public/early.log"}},
	})
	assert.Equal(t, task.ReasonMalformedPayload, res.Resolution.Reason)
	require.NoError(t, res.Err(plugintest.StageRunEndedEarly))
	backing, ok := res.Artifact("public/early.log")
	require.True(t, ok)
	assert.Contains(t, string(backing.Content), `payload.env["A=B"]`, "the log says why")
	_, ok = res.Artifact(tasklog.DefaultLiveName)
	assert.True(t, ok)
}

func TestRunEndedEarlyWithUndecodablePayloadUsesDefaults(t *testing.T) {
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{newPlugin(t)},
		Payload: M{"logs": M{"backing": "../escape"}},
	})
	var ee *task.ExceptionError
	require.ErrorAs(t, res.Err(plugintest.StageNewTaskPlugin), &ee)
	assert.Contains(t, ee.Reasons[0], "payload.logs.backing")
	require.NoError(t, res.Err(plugintest.StageRunEndedEarly))
	assert.Equal(t, []string{tasklog.DefaultLiveName, tasklog.DefaultBackingName}, res.ArtifactNames())

	res = plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newPlugin(t)}, Payload: `{"logs": 5}`})
	assert.Equal(t, task.ReasonMalformedPayload, res.Resolution.Reason)
	assert.Equal(t, []string{tasklog.DefaultLiveName, tasklog.DefaultBackingName}, res.ArtifactNames())
}

func TestInvalidNames(t *testing.T) {
	for _, tt := range []struct {
		payload any
		want    string
	}{
		{M{"logs": M{"live": "public/\x01"}}, "payload.logs.live"},
		{M{"logs": M{"backing": "/abs"}}, "payload.logs.backing"},
		{M{"logs": M{"live": "same", "backing": "same"}}, "also the backing log's name"},
		{M{"features": M{"backingLog": "yes"}}, "payload.features"},
	} {
		res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newPlugin(t)}, Payload: tt.payload})
		var ee *task.ExceptionError
		require.ErrorAs(t, res.Err(plugintest.StageNewTaskPlugin), &ee, "%v", tt.payload)
		assert.Equal(t, task.ReasonMalformedPayload, ee.Reason)
		assert.Contains(t, ee.Error(), tt.want)
	}
}

func TestUploadFailureChangesResolution(t *testing.T) {
	sink := &plugintest.Sink{Fail: func(a task.Artifact) error {
		return task.ResourceUnavailable(errors.New("queue unreachable"))
	}}
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newPlugin(t)}, Sink: sink})
	assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, res.Resolution)
	assert.ErrorContains(t, res.Err(plugintest.StageFinished), "queue unreachable")
}
