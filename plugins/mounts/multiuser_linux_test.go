package mounts_test

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/native"
	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/mounts"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

// TestCacheAcrossTaskUsers: with the native engine in multiuser mode, a
// cache written by one task user is read and written by the next (another
// uid); between runs the kept cache belongs to the worker's user, not to
// a deleted task user.
func TestCacheAcrossTaskUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("multiuser mode needs root")
	}
	p := newPlugin(t)
	e, err := native.New(engines.Options{Config: []byte(`{"multiuser": true, "enableResourceMonitor": false}`)})
	require.NoError(t, err)
	base, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	for d := base; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o711))
	}
	runTask := func(i int, script string) *plugintest.Result {
		dir := filepath.Join(base, "task"+strconv.Itoa(i))
		require.NoError(t, os.Mkdir(dir, 0o755))
		return plugintest.Run(t, plugintest.Case{
			Plugins:    []plugins.Plugin{p},
			Engine:     e,
			TaskDir:    dir,
			Definition: task.Definition{Scopes: []string{"generic-worker:cache:build"}},
			Payload: map[string]any{
				"command": [][]string{{"sh", "-c", script}},
				"mounts":  []any{map[string]any{"cacheName": "build", "directory": "cache"}},
			},
		})
	}
	owner := func(p string) uint32 {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		return fi.Sys().(*syscall.Stat_t).Uid
	}
	res := runTask(1, "id -u > cache/uid1; echo one > cache/log; chmod 600 cache/log")
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	data := mounts.CacheDataDir(p, "build")
	assert.Equal(t, uint32(0), owner(filepath.Join(data, "log")), "kept cache handed back to the worker")

	res = runTask(2, "test \"$(id -u)\" != \"$(cat cache/uid1)\" && echo two >> cache/log && cat cache/log")
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	got, err := os.ReadFile(filepath.Join(data, "log"))
	require.NoError(t, err)
	assert.Equal(t, "one\ntwo\n", string(got))
}
