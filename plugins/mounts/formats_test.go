package mounts_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bodgit/sevenzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/task"
)

// TestZipSymlinksAndMethods: a zip's symlink entries (target stored as
// content) become symlinks, and entries compressed with bzip2 (method 12),
// zstd (93) and xz (95) read back, besides store and deflate.
func TestZipSymlinksAndMethods(t *testing.T) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	methods := map[uint16]string{12: "bz2", 93: "zst", 95: "xz"}
	for m, c := range methods {
		zw.RegisterCompressor(m, func(out io.Writer) (io.WriteCloser, error) {
			return &lazyWriter{open: compressors[c].OpenWriter, out: out}, nil
		})
	}
	add := func(name string, method uint16, mode fs.FileMode, body string) {
		h := &zip.FileHeader{Name: name, Method: method}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		require.NoError(t, err)
		_, err = io.WriteString(w, body)
		require.NoError(t, err)
	}
	add("stored.txt", zip.Store, 0o644, "stored")
	add("deflated.txt", zip.Deflate, 0o644, strings.Repeat("deflated ", 100))
	for m, c := range methods {
		add(c+".txt", m, 0o644, strings.Repeat(c+" ", 100))
	}
	add("sub/link", zip.Store, fs.ModeSymlink|0o777, "../stored.txt")
	require.NoError(t, zw.Close())

	srv := newServer(t, map[string][]byte{"/a.zip": b.Bytes()})
	res := run(t, newPlugin(t), map[string]any{"mounts": []any{
		map[string]any{"directory": "d", "format": "zip", "content": map[string]any{"url": srv.URL + "/a.zip"}},
	}})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Equal(t, "stored", readFile(t, res, "d/stored.txt"))
	assert.Equal(t, strings.Repeat("deflated ", 100), readFile(t, res, "d/deflated.txt"))
	for _, c := range methods {
		assert.Equal(t, strings.Repeat(c+" ", 100), readFile(t, res, "d/"+c+".txt"), c)
	}
	target, err := os.Readlink(filepath.Join(res.Context.TaskDir, "d/sub/link"))
	require.NoError(t, err)
	assert.Equal(t, "../stored.txt", target)
	assert.Equal(t, "stored", readFile(t, res, "d/sub/link"))
}

// TestSevenZip extracts 7z archives (LZMA, bzip2, zstd, deflate coders)
// from github.com/bodgit/sevenzip's test data, found in the module cache,
// and compares every file with what that library reads.
func TestSevenZip(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/bodgit/sevenzip").Output()
	require.NoError(t, err, "go list -m github.com/bodgit/sevenzip (go mod download puts it in the module cache)")
	dir := filepath.Join(strings.TrimSpace(string(out)), "testdata")
	names := []string{"lzma.7z", "bzip2.7z", "zstd.7z", "deflate.7z"}
	files := map[string][]byte{}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		require.NoError(t, err)
		files["/"+n] = data
	}
	srv := newServer(t, files)
	var ms []any
	for _, n := range names {
		ms = append(ms, map[string]any{"directory": n, "format": "7z", "content": map[string]any{"url": srv.URL + "/" + n}})
	}
	res := run(t, newPlugin(t), map[string]any{"mounts": ms})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	for _, n := range names {
		r, err := sevenzip.OpenReader(filepath.Join(dir, n))
		require.NoError(t, err)
		require.NotEmpty(t, r.File)
		for _, f := range r.File {
			rc, err := f.Open()
			require.NoError(t, err)
			want, err := io.ReadAll(rc)
			require.NoError(t, err)
			_ = rc.Close()
			assert.Equal(t, string(want), readFile(t, res, n+"/"+f.Name), n+"/"+f.Name)
		}
		_ = r.Close()
	}
}

// TestTarPAXGlobalHeader: a tar starting with a pax global header (as git
// archive writes, with the commit id) extracts its entries and no file for
// the header; so does a tar whose first entry has a long name (its header
// spans several blocks).
func TestTarPAXGlobalHeader(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	require.NoError(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
		PAXRecords: map[string]string{"comment": "0123456789abcdef0123456789abcdef01234567"}}))
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "repo/README", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}))
	_, err := tw.Write([]byte("hi"))
	require.NoError(t, err)
	long := "repo/" + strings.Repeat("n", 150) // over ustar's 100 bytes: a pax header of its own
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: long, Mode: 0o644, Size: 4, Typeflag: tar.TypeReg}))
	_, err = tw.Write([]byte("long"))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	longFirst := makeTar(t, []entry{{name: long, body: "long"}})
	srv := newServer(t, map[string][]byte{"/g.tar": b.Bytes(), "/l.tar": longFirst})
	res := run(t, newPlugin(t), map[string]any{"mounts": []any{
		map[string]any{"directory": "d", "format": "tar", "content": map[string]any{"url": srv.URL + "/g.tar"}},
		map[string]any{"directory": "l", "format": "tar", "content": map[string]any{"url": srv.URL + "/l.tar"}},
	}})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Equal(t, "hi", readFile(t, res, "d/repo/README"))
	assert.Equal(t, "long", readFile(t, res, "d/"+long))
	assert.Equal(t, "long", readFile(t, res, "l/"+long), "a first entry with a long name")
	ents, err := os.ReadDir(filepath.Join(res.Context.TaskDir, "d"))
	require.NoError(t, err)
	require.Len(t, ents, 1)
	assert.Equal(t, "repo", ents[0].Name())
}

// TestEmptyTar: a tar of no entries (two zero blocks) mounts as an empty
// directory.
func TestEmptyTar(t *testing.T) {
	srv := newServer(t, map[string][]byte{"/e.tar": make([]byte, 1024)})
	res := run(t, newPlugin(t), map[string]any{"mounts": []any{
		map[string]any{"directory": "d", "format": "tar", "content": map[string]any{"url": srv.URL + "/e.tar"}},
	}})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	ents, err := os.ReadDir(filepath.Join(res.Context.TaskDir, "d"))
	require.NoError(t, err)
	assert.Empty(t, ents)
}

// lazyWriter opens its compressor at the first Write or at Close: zip.Writer
// creates an entry's compressor before it writes the entry's local header,
// and the xz writer writes its stream header as soon as it is created.
type lazyWriter struct {
	open func(io.Writer) (io.WriteCloser, error)
	out  io.Writer
	w    io.WriteCloser
}

func (l *lazyWriter) start() (err error) {
	if l.w == nil {
		l.w, err = l.open(l.out)
	}
	return err
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if err := l.start(); err != nil {
		return 0, err
	}
	return l.w.Write(p)
}

func (l *lazyWriter) Close() error {
	if err := l.start(); err != nil {
		return err
	}
	return l.w.Close()
}
