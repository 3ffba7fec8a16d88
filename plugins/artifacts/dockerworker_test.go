package artifacts_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/artifacts"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

func newDockerWorkerPlugin(t testing.TB) plugins.Plugin {
	t.Helper()
	p, err := artifacts.New(plugins.Options{Dialect: task.DialectDockerWorker})
	require.NoError(t, err)
	return p
}

// runDW runs a mock task with docker-worker's `artifacts` map (and
// `features`, when not nil), after writing files into the task directory.
func runDW(t *testing.T, files map[string]string, arts M, features M) *plugintest.Result {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	payload := M{"artifacts": arts}
	if features != nil {
		payload["features"] = features
	}
	return plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newDockerWorkerPlugin(t)}, TaskDir: dir, Payload: payload})
}

func TestDockerWorkerFileAndDirectory(t *testing.T) {
	res := runDW(t, map[string]string{"out/report.txt": "hello", "dist/a.txt": "a", "dist/sub/b.json": "{}"}, M{
		"public/report.txt": M{"type": "file", "path": "out/report.txt"},
		"public/build":      M{"type": "directory", "path": "dist"},
	}, nil)
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.ElementsMatch(t, []string{"public/build/a.txt", "public/build/sub/b.json", "public/report.txt"}, res.ArtifactNames())
	a, ok := res.Artifact("public/report.txt")
	require.True(t, ok)
	assert.Equal(t, "hello", string(a.Content))
	assert.Equal(t, res.Context.Definition.Expires, a.Expires)
	assert.Contains(t, res.Log, `payload.artifacts["public/report.txt"]`)
}

// docker-worker publishes an error artifact for a missing path or the
// wrong kind and does not fail the task (features/artifacts.js).
func TestDockerWorkerMissingDoesNotFail(t *testing.T) {
	res := runDW(t, map[string]string{"file.txt": "x"}, M{
		"public/nope.txt":  M{"type": "file", "path": "nope.txt"},
		"public/nodir":     M{"type": "directory", "path": "nodir"},
		"public/file.txt/": M{"type": "directory", "path": "file.txt"},
	}, nil)
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	for name, reason := range map[string]string{
		"public/nope.txt":  task.ErrorFileMissingOnWorker,
		"public/nodir":     task.ErrorFileMissingOnWorker,
		"public/file.txt/": task.ErrorInvalidResourceOnWorker,
	} {
		a, ok := res.Artifact(name)
		require.True(t, ok, name)
		assert.Equal(t, task.ArtifactError, a.Kind, name)
		assert.Equal(t, reason, a.Reason, name)
	}
	assert.Contains(t, res.Log, "does not fail the task")
}

func TestDockerWorkerVolumeIsADirectory(t *testing.T) {
	res := runDW(t, map[string]string{"vol/x.txt": "x"}, M{
		"public/fred": M{"type": "volume", "path": "vol"},
	}, nil)
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{"public/fred/x.txt"}, res.ArtifactNames())
	assert.Contains(t, res.Log, `type "volume" is published like a directory`)
}

func TestDockerWorkerFeatureArtifactsFalse(t *testing.T) {
	res := runDW(t, map[string]string{"a.txt": "x"}, M{"public/a.txt": M{"type": "file", "path": "a.txt"}}, M{"artifacts": false})
	require.Empty(t, res.Errors)
	assert.Equal(t, task.Completed, res.Resolution.State)
	assert.Empty(t, res.ArtifactNames())
	assert.Contains(t, res.Log, "payload.features.artifacts is false")

	res = runDW(t, map[string]string{"a.txt": "x"}, M{"public/a.txt": M{"type": "file", "path": "a.txt"}}, M{"artifacts": true, "allowPtrace": true})
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{"public/a.txt"}, res.ArtifactNames())
}

func TestDockerWorkerMalformed(t *testing.T) {
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	res := runDW(t, nil, M{
		"public/a":  M{"type": "link", "path": "a"},
		"public/b":  M{"type": "file", "path": ""},
		"/abs":      M{"type": "file", "path": "/x"},
		"public/c":  M{"type": "file", "path": "/c", "expires": past},
		"public/d":  M{"type": "file", "path": "/d", "name": "extra"},
		"public/ok": M{"type": "file", "path": "/ok"},
	}, nil)
	reasons := malformed(t, res)
	assert.Len(t, reasons, 5, "%q", reasons)
	for _, want := range []string{`payload.artifacts["public/a"].type`, `payload.artifacts["public/b"].path`,
		`payload.artifacts["/abs"]`, `payload.artifacts["public/c"].expires`, `payload.artifacts["public/d"]`} {
		assert.Contains(t, reasonsText(reasons), want)
	}
	// The array form is generic-worker's: malformed for a docker-worker plugin.
	res = plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{newDockerWorkerPlugin(t)},
		Payload: M{"artifacts": []any{M{"type": "file", "path": "a"}}}})
	malformed(t, res)
}

// The dialect is the profile's (Options.Dialect), not a config key.
func TestDialectOption(t *testing.T) {
	_, err := artifacts.New(plugins.Options{Config: json.RawMessage(`{"dialect": "docker-worker"}`)})
	require.ErrorContains(t, err, `unknown field "dialect"`)
	p, err := artifacts.New(plugins.Options{Dialect: task.DialectGenericWorkerPosix})
	require.NoError(t, err)
	// docker-worker's map form is malformed for the generic-worker plugin.
	res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{p},
		Payload: M{"artifacts": M{"public/a": M{"type": "file", "path": "a"}}}})
	malformed(t, res)
}

func reasonsText(reasons []string) string {
	var s string
	for _, r := range reasons {
		s += r + "\n"
	}
	return s
}
