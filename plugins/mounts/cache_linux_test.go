package mounts_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/exitstatus"
	"github.com/workergen/workergen/plugins/maxruntime"
	"github.com/workergen/workergen/plugins/mounts"
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

// TestCacheKeptAcrossTasksAndPurged: a real process appends to a file in
// the cache; the next task sees it; an exit code listed in
// onExitStatus.purgeCaches deletes the cache, so the task after starts
// empty.
func TestCacheKeptAcrossTasksAndPurged(t *testing.T) {
	p := newPlugin(t)
	es, err := exitstatus.New(plugins.Options{})
	require.NoError(t, err)
	e := nativeEngine(t)
	def := task.Definition{Scopes: []string{"generic-worker:cache:build"}}
	runTask := func(script string, purgeOn ...int) *plugintest.Result {
		return plugintest.Run(t, plugintest.Case{
			Plugins:    []plugins.Plugin{p, es},
			Engine:     e,
			Definition: def,
			Payload: map[string]any{
				"command":      [][]string{{"sh", "-c", script}},
				"mounts":       []any{map[string]any{"cacheName": "build", "directory": "work/cache"}},
				"onExitStatus": map[string]any{"purgeCaches": append([]int{}, purgeOn...)},
			},
		})
	}
	res := runTask("echo one >> work/cache/log")
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Contains(t, res.Log, "(new, empty)")
	data := mounts.CacheDataDir(p, "build")
	got, err := os.ReadFile(filepath.Join(data, "log"))
	require.NoError(t, err)
	assert.Equal(t, "one\n", string(got), "cache moved back after the task")
	_, err = os.Stat(filepath.Join(res.Context.TaskDir, "work/cache"))
	assert.True(t, os.IsNotExist(err), "cache no longer in the task directory")

	res = runTask("echo two >> work/cache/log; cat work/cache/log > seen; exit 3", 3)
	require.Equal(t, task.Failed, res.Resolution.State, res.Log)
	assert.Contains(t, res.Log, "(existing cache)")
	seen, err := os.ReadFile(filepath.Join(res.Context.TaskDir, "seen"))
	require.NoError(t, err)
	assert.Equal(t, "one\ntwo\n", string(seen))
	assert.Contains(t, res.Log, `purging writable directory cache "build"`)
	_, err = os.Stat(data)
	assert.True(t, os.IsNotExist(err), "purged")

	res = runTask("test ! -e work/cache/log")
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Contains(t, res.Log, "(new, empty)")
}

// TestCacheHeldByAnotherRun: while one run holds a cache, a second run
// gets a fresh copy that is discarded; the first run's cache is kept.
func TestCacheHeldByAnotherRun(t *testing.T) {
	p := newPlugin(t)
	ctx := context.Background()
	newRun := func(id string) (*task.Context, plugins.TaskPlugin) {
		tc := &task.Context{
			TaskID:  id,
			TaskDir: t.TempDir(),
			Log:     task.NewLog(io.Discard),
			Definition: task.Definition{
				Scopes:  []string{"generic-worker:cache:*"},
				Payload: []byte(`{"mounts": [{"cacheName": "shared", "directory": "c", "content": {"base64": "` + tarB64(t) + `"}, "format": "tar"}]}`),
			},
		}
		tp, err := p.NewTaskPlugin(ctx, tc)
		require.NoError(t, err)
		return tc, tp
	}
	tc1, tp1 := newRun("aaaaaaaaaaaaaaaaaaaaaa")
	tc2, tp2 := newRun("bbbbbbbbbbbbbbbbbbbbbb")
	require.NoError(t, tp1.Prepare(ctx))
	require.NoError(t, tp2.Prepare(ctx))
	for _, tc := range []*task.Context{tc1, tc2} {
		got, err := os.ReadFile(filepath.Join(tc.TaskDir, "c", "seed.txt"))
		require.NoError(t, err, "both runs get the preloaded content")
		assert.Equal(t, "seed", string(got))
	}
	require.NoError(t, os.WriteFile(filepath.Join(tc1.TaskDir, "c", "from1"), nil, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(tc2.TaskDir, "c", "from2"), nil, 0o644))
	require.NoError(t, tp2.Dispose(ctx))
	require.NoError(t, tp1.Dispose(ctx))
	data := mounts.CacheDataDir(p, "shared")
	_, err := os.Stat(filepath.Join(data, "from1"))
	assert.NoError(t, err, "the holder's cache is kept")
	_, err = os.Stat(filepath.Join(data, "from2"))
	assert.True(t, os.IsNotExist(err), "the fresh copy is discarded")

	// The cache is free again: a third run gets it.
	tc3, tp3 := newRun("cccccccccccccccccccccc")
	require.NoError(t, tp3.Prepare(ctx))
	_, err = os.Stat(filepath.Join(tc3.TaskDir, "c", "from1"))
	assert.NoError(t, err)
	require.NoError(t, tp3.Dispose(ctx))
}

// TestCachePurgedAfterKill follows generic-worker v106 (mounts_feature.go
// shouldPurgeCaches): a task the worker killed (here maxRunTime) may have
// left its writable caches half-written, so they are purged and the next
// task on the cache starts empty instead of finding index.lock.
func TestCachePurgedAfterKill(t *testing.T) {
	p := newPlugin(t)
	mrt, err := maxruntime.New(plugins.Options{Worker: plugins.WorkerConfig{MaxTaskRunTime: 3600}})
	require.NoError(t, err)
	e := nativeEngine(t)
	def := task.Definition{Scopes: []string{"generic-worker:cache:repo-cache"}}
	runTask := func(script string, maxRunTime int) *plugintest.Result {
		return plugintest.Run(t, plugintest.Case{
			Plugins:    []plugins.Plugin{p, mrt},
			Engine:     e,
			Definition: def,
			Payload: map[string]any{
				"command":    [][]string{{"sh", "-c", script}},
				"maxRunTime": maxRunTime,
				"mounts":     []any{map[string]any{"cacheName": "repo-cache", "directory": "cache"}},
			},
		})
	}
	res := runTask("touch cache/index.lock; echo locked; sleep 600", 1)
	require.Equal(t, task.Failed, res.Resolution.State, res.Log)
	require.True(t, res.TaskResult.Killed(), res.Log)
	assert.Contains(t, res.Log, "purging caches since the task was aborted")
	_, err = os.Stat(mounts.CacheDataDir(p, "repo-cache"))
	assert.True(t, os.IsNotExist(err), "the killed task's cache is purged")

	res = runTask("test ! -e cache/index.lock", 60)
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Contains(t, res.Log, "(new, empty)")
	_, err = os.Stat(mounts.CacheDataDir(p, "repo-cache"))
	assert.NoError(t, err, "a task that ended by itself keeps its cache")
}

// TestAbsoluteMountPaths follows generic-worker v98.0.0 (CHANGELOG, issue
// 6689: "Generic Worker now evaluates absolute paths inside mounts
// correctly"): a file mount and a writable cache at absolute paths are
// there, not re-rooted below the task directory, and the task reads them
// at those paths.
func TestAbsoluteMountPaths(t *testing.T) {
	p := newPlugin(t)
	e := nativeEngine(t)
	abs := t.TempDir()
	file := filepath.Join(abs, "gw-mounted.txt")
	cache := filepath.Join(abs, "caches", "abs-cache")
	runTask := func(script string) *plugintest.Result {
		return plugintest.Run(t, plugintest.Case{
			Plugins:    []plugins.Plugin{p},
			Engine:     e,
			Definition: task.Definition{Scopes: []string{"generic-worker:cache:abs-cache"}},
			Payload: map[string]any{
				"command": [][]string{{"sh", "-c", script}},
				"mounts": []any{
					map[string]any{"file": file, "content": map[string]any{"raw": "mounted"}},
					map[string]any{"cacheName": "abs-cache", "directory": cache},
				},
			},
		})
	}
	res := runTask("cat " + file + " > seen && echo kept > " + cache + "/x")
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Equal(t, "mounted", readFile(t, res, "seen"))
	assert.Contains(t, res.Log, "file mount "+file)
	_, err := os.Stat(filepath.Join(res.Context.TaskDir, strings.TrimPrefix(file, "/")))
	assert.True(t, os.IsNotExist(err), "not re-rooted below the task directory")
	_, err = os.Stat(cache)
	assert.True(t, os.IsNotExist(err), "the cache went back to cachesDir")

	res = runTask("test \"$(cat " + cache + "/x)\" = kept")
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Contains(t, res.Log, "(existing cache)")
}

// TestCachePurgedAfterAbort: a run that ends while its task runs (cancel,
// worker shutdown: Exception without Stopped) purges its caches, as
// generic-worker v106 does for an aborted task; one that ends as an
// exception before the task started keeps them.
func TestCachePurgedAfterAbort(t *testing.T) {
	p := newPlugin(t)
	ctx := context.Background()
	run := func(start bool) {
		tc := &task.Context{
			TaskID: "aaaaaaaaaaaaaaaaaaaaaa", TaskDir: t.TempDir(), Log: task.NewLog(io.Discard),
			Definition: task.Definition{Scopes: []string{"generic-worker:cache:aborted"},
				Payload: []byte(`{"mounts": [{"cacheName": "aborted", "directory": "c"}]}`)},
		}
		tp, err := p.NewTaskPlugin(ctx, tc)
		require.NoError(t, err)
		require.NoError(t, tp.Prepare(ctx))
		require.NoError(t, os.WriteFile(filepath.Join(tc.TaskDir, "c", "half-written"), nil, 0o644))
		if start {
			require.NoError(t, tp.Started(ctx, nil))
		}
		require.NoError(t, tp.Exception(ctx, task.Resolution{State: task.Exception, Reason: task.ReasonWorkerShutdown}))
		require.NoError(t, tp.Dispose(ctx))
	}
	data := mounts.CacheDataDir(p, "aborted")
	run(false)
	_, err := os.Stat(filepath.Join(data, "half-written"))
	assert.NoError(t, err, "the task never started: the cache is kept")
	run(true)
	_, err = os.Stat(data)
	assert.True(t, os.IsNotExist(err), "aborted while running: purged")
}
