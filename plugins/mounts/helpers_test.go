package mounts_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mholt/archives"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/mounts"
	"github.com/workergen/workergen/task"
)

// newPlugin returns a mounts plugin whose caches and downloads live in a
// fresh directory, with short download retries.
func newPlugin(t testing.TB) plugins.Plugin {
	t.Helper()
	return newPluginIn(t, t.TempDir())
}

func newPluginIn(t testing.TB, base string) plugins.Plugin {
	t.Helper()
	// Collection on low disk space is off: CI machines may have little
	// free disk, and gc_test.go covers it on a pretend disk.
	p, err := mounts.New(plugins.Options{Config: json.RawMessage(`{"minFreeBytes": 0}`), Worker: plugins.WorkerConfig{TasksDir: filepath.Join(base, "tasks")}})
	require.NoError(t, err)
	mounts.SetRetry(p, 2*time.Second, 10*time.Millisecond)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

type entry struct {
	name, body, link string
	dir              bool
	hardlink         bool
}

// makeTar returns a tar archive of entries.
func makeTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}
		switch {
		case e.dir:
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case e.hardlink:
			h.Typeflag, h.Linkname, h.Size = tar.TypeLink, e.link, 0
		case e.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		require.NoError(t, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return b.Bytes()
}

// makeZip returns a zip archive of regular files.
func makeZip(t testing.TB, entries []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		require.NoError(t, err)
		_, err = w.Write([]byte(e.body))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return b.Bytes()
}

var compressors = map[string]archives.Compressor{
	"br": archives.Brotli{}, "bz2": archives.Bz2{}, "gz": archives.Gz{}, "lz": archives.Lzip{}, "lz4": archives.Lz4{},
	"mz": archives.MinLZ{}, "sz": archives.Sz{}, "xz": archives.Xz{}, "zst": archives.Zstd{}, "zz": archives.Zlib{},
}

// compress compresses data with one of the fileMount formats.
func compress(t testing.TB, format string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := compressors[format].OpenWriter(&b)
	require.NoError(t, err)
	_, err = w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// server serves files by path and counts requests per path.
type server struct {
	*httptest.Server
	files map[string][]byte
	hits  map[string]*atomic.Int64
}

func newServer(t testing.TB, files map[string][]byte) *server {
	t.Helper()
	s := &server{files: files, hits: map[string]*atomic.Int64{}}
	for p := range files {
		s.hits[p] = &atomic.Int64{}
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := s.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		s.hits[r.URL.Path].Add(1)
		_, _ = w.Write(data)
	}))
	t.Cleanup(s.Close)
	return s
}

func reasonOf(t testing.TB, err error) *task.ExceptionError {
	t.Helper()
	var ee *task.ExceptionError
	require.True(t, errors.As(err, &ee), "not an exception error: %v", err)
	return ee
}

func tarB64(t testing.TB) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(makeTar(t, []entry{{name: "seed.txt", body: "seed"}}))
}
