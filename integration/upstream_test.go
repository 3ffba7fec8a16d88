//go:build linux

package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/worker"
)

// Upstream behaviours tasks notice (issue 17), through the generated
// linux-native binary: `work` against the embedded Queue and `run` on the
// same payloads must agree.

// taskScoped creates a task with payload and scopes.
func (e *env) taskScoped(payload map[string]any, scopes ...string) string {
	e.t.Helper()
	id := worker.NewSlugID()
	now := time.Now().UTC()
	def := map[string]any{
		"taskQueueId": pool, "schedulerId": "it", "taskGroupId": id, "scopes": scopes,
		"created": now, "deadline": now.Add(time.Hour), "expires": now.Add(24 * time.Hour),
		"payload":  payload,
		"metadata": map[string]string{"name": "integration", "description": "d", "owner": "it@example.com", "source": "https://example.com/it"},
	}
	_, err := e.queue.CreateTaskJSON(context.Background(), id, def)
	require.NoError(e.t, err)
	return id
}

// runMode runs payload with `worker run` (no rootUrl) and returns its
// manifest.
func runMode(t *testing.T, payload map[string]any, scopes ...string) worker.Manifest {
	t.Helper()
	dir := t.TempDir()
	taskFile := filepath.Join(dir, "task.json")
	data, _ := json.Marshal(map[string]any{"payload": payload, "scopes": scopes})
	require.NoError(t, os.WriteFile(taskFile, data, 0o644))
	out := filepath.Join(dir, "out")
	cmd := exec.Command(workerBin, "run", "--output", out, taskFile)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), stateDirEnv()}
	output, _ := cmd.CombinedOutput()
	var m worker.Manifest
	raw, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	require.NoError(t, err, "run output:\n%s", output)
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func artifactKinds(t *testing.T, e *env, id string) map[string]string {
	t.Helper()
	arts, err := e.queue.Artifacts(id, 0)
	require.NoError(t, err)
	kinds := map[string]string{}
	for _, a := range arts {
		kinds[a.Name] = a.StorageType
	}
	return kinds
}

// TestDuplicateAndOptionalArtifactsRunAndWork: a name published from two
// files is malformed-payload naming both (generic-worker v106
// classifyCreateArtifactError: the Queue's 409 is malformed-payload), and
// a missing optional artifact is an error artifact on a completed run
// (generic-worker v106 artifact_feature.go), identically in both modes.
func TestDuplicateAndOptionalArtifactsRunAndWork(t *testing.T) {
	dup := map[string]any{
		"command": sh("mkdir -p out other; echo a > out/ok.txt; echo b > other/ok.txt"), "maxRunTime": 30,
		"artifacts": []any{
			map[string]any{"type": "directory", "path": "out", "name": "public/out"},
			map[string]any{"type": "file", "path": "other/ok.txt", "name": "public/out/ok.txt"},
		},
	}
	optional := map[string]any{
		"command": sh("true"), "maxRunTime": 30,
		"artifacts": []any{map[string]any{"type": "file", "path": "nope.txt", "name": "public/nope.txt", "optional": true}},
	}
	e := newEnv(t, time.Minute)
	tDup, tOpt := e.task(dup, 0), e.task(optional, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 2})
	e.wait(cmd, out)

	assert.Equal(t, "exception/malformed-payload", e.runState(tDup, 0))
	log := e.artifact(tDup, 0, "public/logs/live_backing.log")
	assert.Contains(t, log, `"public/out/ok.txt" is published twice: from payload.artifacts[0] "out/ok.txt" and from payload.artifacts[1] "other/ok.txt"`)
	m := runMode(t, dup)
	assert.Equal(t, "exception/malformed-payload", m.Resolution)
	assert.Contains(t, strings.Join(m.Reasons, "\n"), `"public/out/ok.txt" is published twice`)

	assert.Equal(t, "completed", e.runState(tOpt, 0))
	assert.Equal(t, "error", artifactKinds(t, e, tOpt)["public/nope.txt"])
	m = runMode(t, optional)
	assert.Equal(t, "completed", m.Resolution)
	var kind, reason string
	for _, a := range m.Artifacts {
		if a.Name == "public/nope.txt" {
			kind, reason = a.StorageType, a.Reason
		}
	}
	assert.Equal(t, "error", kind)
	assert.Equal(t, "file-missing-on-worker", reason)
}

// TestObjectArtifactLogSaysIdentity: object artifacts are stored
// unencoded, and the task log says so.
func TestObjectArtifactLogSaysIdentity(t *testing.T) {
	e := newEnv(t, time.Minute)
	id := e.task(map[string]any{
		"command": sh("echo object > o.txt"), "maxRunTime": 30,
		"artifacts": []any{map[string]any{"type": "file", "path": "o.txt", "name": "public/o.txt"}},
	}, 0)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 1, "artifactUpload": "object"})
	e.wait(cmd, out)
	require.Equal(t, "completed", e.runState(id, 0), "worker output:\n%s", out)
	log := e.artifact(id, 0, "public/logs/live_backing.log")
	assert.Contains(t, log, `artifact "public/o.txt": 7 bytes, text/plain; charset=utf-8, identity encoding`)
}

// TestCachesMountsAndRolesInWork: through the binary and the embedded
// Queue, a cache left by a task killed at maxRunTime is purged
// (generic-worker v106 shouldPurgeCaches), an absolute file mount is at
// its absolute path (generic-worker v98), and the cache scope comes from
// a role the task assumes (generic-worker v106 scopes.Given.Satisfies
// expanding through auth.expandScopes with the worker's credentials).
func TestCachesMountsAndRolesInWork(t *testing.T) {
	e := newEnv(t, time.Minute)
	require.NoError(t, e.queue.CreateRole("repo:hg.mozilla.org/projects/nss:*", "branches", []string{"generic-worker:cache:repo-cache"}))
	assume := "assume:repo:hg.mozilla.org/projects/nss:branch:default"
	cache := map[string]any{"cacheName": "repo-cache", "directory": "cache"}
	abs := filepath.Join(e.shared, "gw-mounted.txt")
	killed := e.taskScoped(map[string]any{"command": sh("touch cache/index.lock; sleep 600"), "maxRunTime": 2, "mounts": []any{cache}}, assume)
	next := e.taskScoped(map[string]any{
		"command": sh("test ! -e cache/index.lock && cat " + abs), "maxRunTime": 30,
		"mounts": []any{cache, map[string]any{"file": abs, "content": map[string]any{"raw": "mounted"}}},
	}, assume)
	cmd, out := e.start(map[string]any{"numberOfTasksToRun": 2})
	e.wait(cmd, out)
	assert.Equal(t, "failed", e.runState(killed, 0))
	assert.Contains(t, e.artifact(killed, 0, "public/logs/live_backing.log"), "purging caches since the task was aborted")
	require.Equal(t, "completed", e.runState(next, 0), e.artifact(next, 0, "public/logs/live_backing.log"))
	assert.Contains(t, e.artifact(next, 0, "public/logs/live_backing.log"), "mounted")
}
