package hostdir_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/engines/internal/hostdir"
)

func taskDir(t testing.TB) string {
	d, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	return d
}

func write(t testing.TB, dir, rel, content string) {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

func TestVanishingFileDuringWalk(t *testing.T) {
	dir := taskDir(t)
	write(t, dir, "out/a.txt", "a")
	write(t, dir, "out/b.txt", "b")
	write(t, dir, "out/c.txt", "c")
	d := hostdir.Dir{Path: dir}
	var seen []string
	err := d.ExtractFolder(context.Background(), "out", func(rel string, f engines.File) error {
		seen = append(seen, rel)
		if rel == "a.txt" {
			require.NoError(t, os.Remove(filepath.Join(dir, "out", "b.txt")))
		}
		rc, err := f.Open()
		if rel == "b.txt" {
			assert.ErrorIs(t, err, engines.ErrNotFound)
			assert.Equal(t, int64(-1), f.Size())
			return nil
		}
		require.NoError(t, err)
		defer rc.Close()
		data, _ := io.ReadAll(rc)
		assert.Equal(t, rel[:1], string(data))
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a.txt", "b.txt", "c.txt"}, seen)
}

func TestFileRemovedAfterExtract(t *testing.T) {
	dir := taskDir(t)
	write(t, dir, "a.txt", "a")
	f, err := hostdir.Dir{Path: dir}.ExtractFile(context.Background(), "a.txt")
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(dir, "a.txt")))
	_, err = f.Open()
	assert.ErrorIs(t, err, engines.ErrNotFound)
}

func TestSymlinkSwappedAfterCheckCannotEscape(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir, outside := taskDir(t), taskDir(t)
	write(t, outside, "secret.txt", "secret")
	write(t, dir, "a.txt", "a")
	f, err := hostdir.Dir{Path: dir}.ExtractFile(context.Background(), "a.txt")
	require.NoError(t, err)
	// The task (still running, or a racing process) replaces the file
	// with a symlink out of the task directory after the check.
	require.NoError(t, os.Remove(filepath.Join(dir, "a.txt")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "a.txt")))
	_, err = f.Open()
	assert.ErrorIs(t, err, engines.ErrOutsideTaskDir)
}

func TestRootAndEmptyPath(t *testing.T) {
	dir := taskDir(t)
	write(t, dir, "x/y.txt", "y")
	d := hostdir.Dir{Path: dir}
	var seen []string
	for _, p := range []string{"", ".", "./"} {
		seen = seen[:0]
		require.NoError(t, d.ExtractFolder(context.Background(), p, func(rel string, _ engines.File) error {
			seen = append(seen, rel)
			return nil
		}))
		assert.Equal(t, []string{"x/y.txt"}, seen, p)
	}
	_, err := d.ExtractFile(context.Background(), ".")
	assert.ErrorIs(t, err, engines.ErrNotAFile)
}

func TestSkippedSymlinksAreReported(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	dir, outside := taskDir(t), taskDir(t)
	write(t, outside, "secret.txt", "secret")
	write(t, dir, "out/ok.txt", "ok")
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "out", "escape.txt")))
	require.NoError(t, os.Symlink("nowhere", filepath.Join(dir, "out", "dangling.txt")))
	require.NoError(t, os.Symlink(".", filepath.Join(dir, "out", "loop")))
	var skipped []string
	d := hostdir.Dir{Path: dir, Skipped: func(rel string, why error) {
		skipped = append(skipped, fmt.Sprintf("%s: %v", rel, errors.Is(why, engines.ErrOutsideTaskDir)))
	}}
	var seen []string
	require.NoError(t, d.ExtractFolder(context.Background(), "out", func(rel string, _ engines.File) error {
		seen = append(seen, rel)
		return nil
	}))
	assert.Equal(t, []string{"ok.txt"}, seen)
	slices.Sort(skipped)
	assert.Equal(t, []string{"dangling.txt: false", "escape.txt: true"}, skipped)

	// From an absolute folder, links are followed wherever they point.
	seen = seen[:0]
	require.NoError(t, d.ExtractFolder(context.Background(), filepath.Join(dir, "out"), func(rel string, _ engines.File) error {
		seen = append(seen, rel)
		return nil
	}))
	assert.Equal(t, []string{"escape.txt", "ok.txt"}, seen)
}

func TestContextCancelled(t *testing.T) {
	dir := taskDir(t)
	write(t, dir, "a/b.txt", "b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := hostdir.Dir{Path: dir}
	assert.ErrorIs(t, d.ExtractFolder(ctx, "a", func(string, engines.File) error { return nil }), context.Canceled)
	_, err := d.ExtractFile(ctx, "a/b.txt")
	assert.ErrorIs(t, err, context.Canceled)
}

// BenchmarkExtractFolder10000 walks a folder of 10,000 small files and
// reads each, as a directory artifact upload would.
func BenchmarkExtractFolder10000(b *testing.B) {
	dir := taskDir(b)
	for i := range 10000 {
		write(b, dir, fmt.Sprintf("out/d%02d/f%05d.txt", i%100, i), "small file content\n")
	}
	d := hostdir.Dir{Path: dir, Roots: &hostdir.Roots{}}
	defer d.Roots.Close()
	buf := make([]byte, 4096)
	for b.Loop() {
		n := 0
		err := d.ExtractFolder(context.Background(), "out", func(_ string, f engines.File) error {
			rc, err := f.Open()
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(io.Discard, rc, buf)
			_ = rc.Close()
			n++
			return err
		})
		if err != nil || n != 10000 {
			b.Fatalf("walk: %v, %d files", err, n)
		}
	}
}
