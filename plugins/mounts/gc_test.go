package mounts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/mounts"
	"github.com/workergen/workergen/task"
)

// gcWorker is a mounts plugin on a pretend disk of 1000 bytes, of which
// what is kept in caches and downloads is used.
type gcWorker struct {
	t     *testing.T
	p     plugins.Plugin
	base  string
	url   string // serves 30 bytes
	other int64  // bytes used by anything else
}

func newGCWorker(t *testing.T, config string) *gcWorker {
	base := t.TempDir()
	w := &gcWorker{t: t, base: base}
	p, err := mounts.New(plugins.Options{Config: json.RawMessage(config), Worker: plugins.WorkerConfig{TasksDir: filepath.Join(base, "tasks")}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	mounts.SetFreeBytes(p, func(string) (int64, error) {
		var used int64
		for _, d := range []string{"caches", "downloads"} {
			_ = filepath.WalkDir(filepath.Join(base, d), func(_ string, e fs.DirEntry, err error) error {
				if err == nil && e.Type().IsRegular() && e.Name() != "cache.json" {
					fi, _ := e.Info()
					used += fi.Size()
				}
				return nil
			})
		}
		return 1000 - used - w.other, nil
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("d"), 30))
	}))
	t.Cleanup(srv.Close)
	w.p, w.url = p, srv.URL+"/thirty"
	return w
}

// run prepares a run mounting cache name (and the download when withFile)
// and writes size bytes into the cache; done disposes of it.
func (w *gcWorker) run(name string, size int, withFile bool) (log *bytes.Buffer, done func()) {
	t := w.t
	ms := []any{map[string]any{"cacheName": name, "directory": "cache"}}
	if withFile {
		ms = append(ms, map[string]any{"file": "f", "content": map[string]any{"url": w.url}})
	}
	payload, _ := json.Marshal(map[string]any{"mounts": ms})
	log = new(bytes.Buffer)
	tc := &task.Context{TaskID: "gcgcgcgcgcgcgcgcgcgcgA", TaskDir: t.TempDir(), Log: task.NewLog(log),
		Definition: task.Definition{Scopes: []string{"generic-worker:cache:*"}, Payload: payload}}
	ctx := context.Background()
	tp, err := w.p.NewTaskPlugin(ctx, tc)
	require.NoError(t, err)
	require.NoError(t, tp.Prepare(ctx), log.String())
	require.NoError(t, os.WriteFile(filepath.Join(tc.TaskDir, "cache", "blob"), bytes.Repeat([]byte("c"), size), 0o644))
	return log, func() { require.NoError(t, tp.Dispose(ctx)) }
}

// age sets the last use of cache name, or of the download when name is "".
func (w *gcWorker) age(name string, ago time.Duration) {
	path := filepath.Join(mounts.CacheDataDir(w.p, name), "..", "cache.json")
	if name == "" {
		files, err := os.ReadDir(filepath.Join(w.base, "downloads"))
		require.NoError(w.t, err)
		require.Len(w.t, files, 1)
		path = filepath.Join(w.base, "downloads", files[0].Name())
	}
	when := time.Now().Add(-ago)
	require.NoError(w.t, os.Chtimes(path, when, when))
}

func (w *gcWorker) kept(name string) bool {
	_, err := os.Stat(mounts.CacheDataDir(w.p, name))
	return err == nil
}

func (w *gcWorker) downloads() int {
	files, _ := os.ReadDir(filepath.Join(w.base, "downloads"))
	return len(files)
}

func TestLowDiskSpaceDeletesLeastRecentlyUsed(t *testing.T) {
	w := newGCWorker(t, `{"minFreeBytes": 900}`)
	_, done := w.run("a", 60, false)
	done()
	_, done = w.run("b", 60, true)
	done()
	w.age("a", 2*time.Hour)
	w.age("", 90*time.Minute)
	w.age("b", time.Hour)

	// 150 bytes kept, 850 free: deleting "a" (the oldest) is enough.
	log, done := w.run("c", 200, false)
	assert.Contains(t, log.String(), `low disk space (850 bytes free, want 900): deleted writable directory cache "a"`)
	assert.False(t, w.kept("a"))
	assert.True(t, w.kept("b"))
	assert.Equal(t, 1, w.downloads())

	// "c" is held (in the task directory) and something else takes 100
	// bytes: the download and "b" go, in that order; "c" is not touched.
	w.other = 100
	log2, done2 := w.run("d", 10, false)
	lines := log2.String()
	assert.Contains(t, lines, "low disk space (810 bytes free, want 900): deleted download")
	assert.Contains(t, lines, `low disk space (840 bytes free, want 900): deleted writable directory cache "b"`)
	assert.NotContains(t, lines, `cache "c"`)
	assert.Equal(t, 0, w.downloads())
	assert.False(t, w.kept("b"))
	done()
	done2()
	assert.True(t, w.kept("c"), "the held cache was kept")

	// Not enough can be deleted: said, and the run goes on. A directory in
	// cachesDir that is not a cache of this plugin is left alone.
	junk := filepath.Join(w.base, "caches", "junk", "data")
	require.NoError(t, os.MkdirAll(junk, 0o755))
	w.other = 950
	log, done = w.run("e", 0, false)
	done()
	assert.Contains(t, log.String(), "no unused cache or download is left to delete")
	assert.False(t, w.kept("c"))
	assert.False(t, w.kept("d"))
	assert.DirExists(t, junk)
}

func TestLowDiskSpaceCollectionOff(t *testing.T) {
	w := newGCWorker(t, `{"minFreeBytes": 0}`)
	_, done := w.run("a", 600, false)
	done()
	log, done := w.run("b", 1, false)
	done()
	assert.NotContains(t, log.String(), "low disk space")
	assert.True(t, w.kept("a"))

	_, err := mounts.New(plugins.Options{Config: json.RawMessage(`{"minFreeBytes": -1}`)})
	assert.ErrorContains(t, err, "minFreeBytes -1 is negative")
}
