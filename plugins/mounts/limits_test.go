package mounts_test

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
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

// zeros writes n zero bytes to w.
func zeros(t testing.TB, w io.Writer, n int64) {
	t.Helper()
	_, err := io.CopyN(w, zeroReader{}, n)
	require.NoError(t, err)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// zipBomb is a zip of about 1 MB whose one entry expands to 1 GiB.
func zipBomb(t testing.TB) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create("bomb.bin")
	require.NoError(t, err)
	zeros(t, w, 1<<30)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

func pluginWithCap(t *testing.T, maxExtracted int64) plugins.Plugin {
	cfg, _ := json.Marshal(map[string]any{"minFreeBytes": 0, "maxExtractedSize": maxExtracted})
	p, err := mounts.New(plugins.Options{Config: cfg, Worker: plugins.WorkerConfig{TasksDir: filepath.Join(t.TempDir(), "tasks")}})
	require.NoError(t, err)
	mounts.SetRetry(p, 2*time.Second, 10*time.Millisecond)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// dirSize is the bytes of the regular files below dir.
func dirSize(t *testing.T, dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestZipBombRefused: a ~1 MB zip that expands to 1 GiB, with
// maxExtractedSize 64 MiB, is refused as malformed-payload naming the
// limit, having written no more than the limit.
func TestZipBombRefused(t *testing.T) {
	const limit = 64 << 20
	bomb := zipBomb(t)
	t.Logf("zip of %d bytes expanding to %d", len(bomb), 1<<30)
	srv := newServer(t, map[string][]byte{"/bomb.zip": bomb})
	res := run(t, pluginWithCap(t, limit), map[string]any{"mounts": []any{
		map[string]any{"directory": "d", "format": "zip", "content": map[string]any{"url": srv.URL + "/bomb.zip"}},
	}})
	require.Equal(t, task.Exception, res.Resolution.State, res.Log)
	assert.Equal(t, task.ReasonMalformedPayload, res.Resolution.Reason)
	assert.Contains(t, res.Log, "expands to more than 67108864 bytes, the limit set by the mounts config's maxExtractedSize")
	assert.LessOrEqual(t, dirSize(t, res.Context.TaskDir), int64(limit))
}

// TestCompressedFileMountCapped: the same limit holds for a file mount's
// decompression (a gzip bomb).
func TestCompressedFileMountCapped(t *testing.T) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zeros(t, zw, 16<<20)
	require.NoError(t, zw.Close())
	srv := newServer(t, map[string][]byte{"/bomb.gz": b.Bytes()})
	res := run(t, pluginWithCap(t, 1<<20), map[string]any{"mounts": []any{
		map[string]any{"file": "f.bin", "format": "gz", "content": map[string]any{"url": srv.URL + "/bomb.gz"}},
	}})
	require.Equal(t, task.Exception, res.Resolution.State, res.Log)
	assert.Equal(t, task.ReasonMalformedPayload, res.Resolution.Reason)
	assert.Contains(t, res.Log, "maxExtractedSize")
}

// TestFreeSpaceBoundsExtraction: without a configured cap, the free disk
// space bounds what an archive may expand to.
func TestFreeSpaceBoundsExtraction(t *testing.T) {
	p := pluginWithCap(t, 0)
	mounts.SetFreeBytes(p, func(string) (int64, error) { return 1 << 20, nil })
	srv := newServer(t, map[string][]byte{"/z": makeZip(t, []entry{{name: "big", body: string(make([]byte, 2<<20))}})})
	res := run(t, p, map[string]any{"mounts": []any{
		map[string]any{"directory": "d", "format": "zip", "content": map[string]any{"url": srv.URL + "/z"}},
	}})
	require.Equal(t, task.Exception, res.Resolution.State, res.Log)
	assert.Contains(t, res.Log, "the free space on the task directory's file system")
}

// TestPartialDownloadsRemovedAtStart: a .download-* file left by a worker
// killed mid-fetch is removed when the plugin is made again.
func TestPartialDownloadsRemovedAtStart(t *testing.T) {
	base := t.TempDir()
	dl := filepath.Join(base, "downloads")
	require.NoError(t, os.MkdirAll(dl, 0o755))
	partial := filepath.Join(dl, ".download-123")
	kept := filepath.Join(dl, "kept")
	require.NoError(t, os.WriteFile(partial, []byte("half"), 0o644))
	require.NoError(t, os.WriteFile(kept, []byte("whole"), 0o644))
	newPluginIn(t, base)
	assert.NoFileExists(t, partial)
	assert.FileExists(t, kept)
}
