package container

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/workergen/workergen/engines"
)

// maxSymlinks bounds symlink resolution of an extracted path.
const maxSymlinks = 40

// workDir is the container's working directory (relative artifact paths
// are relative to it), "/" when the image sets none.
func (r *result) workDir(ctx context.Context) (string, error) {
	r.wdOnce.Do(func() {
		in, err := r.s.e.cli.ContainerInspect(ctx, r.s.id, client.ContainerInspectOptions{})
		if err != nil {
			r.wdErr = fmt.Errorf("inspecting container %s: %w", shortID(r.s.id), err)
			return
		}
		r.wd = "/"
		if in.Container.Config != nil && in.Container.Config.WorkingDir != "" {
			r.wd = in.Container.Config.WorkingDir
		}
	})
	return r.wd, r.wdErr
}

// stat resolves p (relative to the working directory, symlinks followed)
// and returns its absolute path in the container and its stat.
func (r *result) stat(ctx context.Context, p string) (string, container.PathStat, error) {
	if !path.IsAbs(p) {
		wd, err := r.workDir(ctx)
		if err != nil {
			return "", container.PathStat{}, err
		}
		p = path.Join(wd, p)
	}
	p = path.Clean(p)
	for range maxSymlinks {
		st, err := r.s.e.cli.ContainerStatPath(ctx, r.s.id, client.ContainerStatPathOptions{Path: p})
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				return "", container.PathStat{}, fmt.Errorf("%s: %w", p, engines.ErrNotFound)
			}
			return "", container.PathStat{}, fmt.Errorf("stat %s in container %s: %w", p, shortID(r.s.id), err)
		}
		if st.Stat.Mode&fs.ModeSymlink == 0 {
			return p, st.Stat, nil
		}
		target := st.Stat.LinkTarget
		if target == "" {
			return "", container.PathStat{}, fmt.Errorf("%s: symlink with unknown target: %w", p, engines.ErrNotFound)
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
	return "", container.PathStat{}, fmt.Errorf("%s: too many levels of symbolic links: %w", p, engines.ErrNotFound)
}

// ExtractFile implements engines.ResultSet: the file is streamed from the
// container through the archive API at each Open.
func (r *result) ExtractFile(ctx context.Context, p string) (engines.File, error) {
	abs, st, err := r.stat(ctx, p)
	if err != nil {
		return nil, err
	}
	if !st.Mode.IsRegular() {
		return nil, fmt.Errorf("%s: %w", abs, engines.ErrNotAFile)
	}
	return &containerFile{r: r, path: abs, size: st.Size, mode: st.Mode}, nil
}

// containerFile is a regular file in the stopped container.
type containerFile struct {
	r    *result
	path string
	size int64
	mode fs.FileMode
}

func (f *containerFile) Size() int64       { return f.size }
func (f *containerFile) HostPath() string  { return "" }
func (f *containerFile) Mode() fs.FileMode { return f.mode }

// Open streams the file's content out of a one-entry tar stream.
func (f *containerFile) Open() (io.ReadCloser, error) {
	ctx := context.Background()
	for attempt := 1; ; attempt++ {
		rc, empty, err := f.open(ctx)
		// Podman 4 sometimes answers with an empty archive while other
		// containers are being copied from concurrently: retry that.
		if empty && attempt < emptyArchiveAttempts {
			time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
			continue
		}
		return rc, err
	}
}

// emptyArchiveAttempts bounds the retries of an empty archive answer.
const emptyArchiveAttempts = 5

func (f *containerFile) open(ctx context.Context) (rc io.ReadCloser, empty bool, err error) {
	res, err := f.r.s.e.cli.CopyFromContainer(ctx, f.r.s.id, client.CopyFromContainerOptions{SourcePath: f.path})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, false, fmt.Errorf("%s: %w", f.path, engines.ErrNotFound)
		}
		return nil, false, fmt.Errorf("copying %s from container %s: %w", f.path, shortID(f.r.s.id), err)
	}
	tr := tar.NewReader(res.Content)
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err != nil {
			res.Content.Close()
			if err == io.EOF {
				return nil, n == 0, fmt.Errorf("%s: archive holds no file: %w", f.path, engines.ErrNotFound)
			}
			return nil, false, fmt.Errorf("reading archive of %s: %w", f.path, err)
		}
		if h.Typeflag == tar.TypeReg {
			return &tarEntry{Reader: tr, c: res.Content}, false, nil
		}
	}
}

type tarEntry struct {
	io.Reader
	c io.Closer
}

func (t *tarEntry) Close() error { return t.c.Close() }

// ExtractFolder implements engines.ResultSet. The folder is read as one tar
// stream from the archive API and its regular files are written to a spool
// directory on the host (under the run's task directory, else the system
// temporary directory), removed at Dispose; fn then sees host files, in
// lexical order (by path components, as fs.WalkDir), each with its
// HostPath. Memory use does not grow with the folder's size.
func (r *result) ExtractFolder(ctx context.Context, p string, fn func(rel string, f engines.File) error) error {
	abs, st, err := r.stat(ctx, p)
	if err != nil {
		return err
	}
	if !st.Mode.IsDir() {
		return fmt.Errorf("%s: %w", abs, engines.ErrNotAFolder)
	}
	var files []*hostFile
	for attempt := 1; ; attempt++ {
		spool, err := r.spoolDir()
		if err != nil {
			return err
		}
		var entries int
		files, entries, err = r.spoolFolder(ctx, abs, spool)
		if err != nil {
			return err
		}
		// An archive of a directory holds at least the directory itself;
		// Podman 4 sometimes answers with an empty one under concurrency.
		if entries > 0 || attempt == emptyArchiveAttempts {
			break
		}
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
	}
	sort.Slice(files, func(i, j int) bool { return walkLess(files[i].rel, files[j].rel) })
	for _, f := range files {
		if err := fn(f.rel, f); err != nil {
			return err
		}
	}
	return nil
}

// spoolFolder copies the folder abs into spool; entries counts the archive's
// entries of any type.
func (r *result) spoolFolder(ctx context.Context, abs, spool string) ([]*hostFile, int, error) {
	res, err := r.s.e.cli.CopyFromContainer(ctx, r.s.id, client.CopyFromContainerOptions{SourcePath: abs})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, 0, fmt.Errorf("%s: %w", abs, engines.ErrNotFound)
		}
		return nil, 0, fmt.Errorf("copying %s from container %s: %w", abs, shortID(r.s.id), err)
	}
	defer res.Content.Close()
	files, entries, err := spoolTar(ctx, tar.NewReader(res.Content), spool)
	if err != nil {
		return nil, 0, fmt.Errorf("extracting %s from container %s: %w", abs, shortID(r.s.id), err)
	}
	return files, entries, nil
}

func (r *result) spoolDir() (string, error) {
	base := r.s.tc.TaskDir
	if base != "" {
		if _, err := os.Stat(base); err != nil {
			base = ""
		}
	}
	d, err := os.MkdirTemp(base, "container-extract-")
	if err != nil {
		return "", fmt.Errorf("creating spool directory: %w", err)
	}
	r.s.mu.Lock()
	r.s.spoolDirs = append(r.s.spoolDirs, d)
	r.s.mu.Unlock()
	return d, nil
}

// hostFile is a spooled file.
type hostFile struct {
	rel, path string
	size      int64
	mode      fs.FileMode
}

func (f *hostFile) Size() int64       { return f.size }
func (f *hostFile) HostPath() string  { return f.path }
func (f *hostFile) Mode() fs.FileMode { return f.mode }
func (f *hostFile) Open() (io.ReadCloser, error) {
	fh, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", f.rel, engines.ErrNotFound)
	}
	return fh, err
}

// spoolTar writes the regular files (and hard links to them) of a tar
// stream rooted at one directory entry into dir, returning them with paths
// relative to that directory.
func spoolTar(ctx context.Context, tr *tar.Reader, dir string) (files []*hostFile, entries int, _ error) {
	byName := map[string]*hostFile{}
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return nil, entries, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return files, entries, nil
		}
		if err != nil {
			return nil, entries, err
		}
		entries++
		rel, ok := relName(h.Name)
		if !ok {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(rel))
		switch h.Typeflag {
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return nil, entries, err
			}
			out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return nil, entries, err
			}
			n, err := io.CopyBuffer(out, tr, buf)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, entries, err
			}
			f := &hostFile{rel: rel, path: dst, size: n, mode: h.FileInfo().Mode()}
			files = append(files, f)
			byName[rel] = f
		case tar.TypeLink:
			src, ok := relName(h.Linkname)
			if !ok || byName[src] == nil {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return nil, entries, err
			}
			if err := os.Link(byName[src].path, dst); err != nil {
				return nil, entries, err
			}
			f := &hostFile{rel: rel, path: dst, size: byName[src].size, mode: byName[src].mode}
			files = append(files, f)
			byName[rel] = f
		}
	}
}

// relName strips the archive's root entry (the folder's own name) from a
// tar entry name; ok is false for the root itself and for names that would
// leave the folder.
func relName(name string) (string, bool) {
	name = strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(name, "./")), "/")
	_, rest, found := strings.Cut(name, "/")
	if !found || rest == "" || !filepath.IsLocal(rest) {
		return "", false
	}
	return rest, true
}

// walkLess orders slash-separated paths the way fs.WalkDir visits them:
// component by component, each lexically.
func walkLess(a, b string) bool {
	for {
		ah, at, aMore := strings.Cut(a, "/")
		bh, bt, bMore := strings.Cut(b, "/")
		if ah != bh {
			return ah < bh
		}
		if !aMore || !bMore {
			return !aMore && bMore
		}
		a, b = at, bt
	}
}
