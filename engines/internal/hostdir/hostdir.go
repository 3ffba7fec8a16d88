// Package hostdir reads a finished task's files from its task directory on
// the worker host: the ExtractFile / ExtractFolder half of engines.ResultSet
// for engines whose tasks run on the host (native, mock).
//
// Path rules (generic-worker's artifact rules, see upstream
// workers/generic-worker/artifacts.go):
//
//   - A relative path is relative to the task directory and must stay inside
//     it after symlinks are resolved; otherwise the error wraps
//     engines.ErrOutsideTaskDir. Opening goes through an os.Root on the task
//     directory, so a symlink swapped in after the check cannot escape either.
//   - An absolute path is used as given (the task declared it absolute) and
//     may point anywhere the worker's user can read.
//   - A missing path wraps engines.ErrNotFound; a directory or other
//     non-regular file given to ExtractFile wraps engines.ErrNotAFile; a
//     non-directory given to ExtractFolder wraps engines.ErrNotAFolder.
//
// ExtractFolder walks in lexical order (filepath.WalkDir), passes regular
// files and symlinks to regular files that stay inside the containment root,
// never follows symlinks to directories, and writes one line to the task log
// for each symlink it skips because it leaves the task directory.
package hostdir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/workergen/workergen/engines"
)

// Dir is a task directory on the host. The zero Roots is ready to use;
// call Close when the result set is disposed.
type Dir struct {
	// Path is the task directory (absolute).
	Path string
	// Skipped, when set, is told about every symlink ExtractFolder skips
	// (path relative to the folder, slash-separated, and why). Engines pass
	// a function that writes a line to the task log.
	Skipped func(rel string, why error)
	// Roots caches the os.Root handles files are opened through; share one
	// per result set (nil: each Open opens its own).
	Roots *Roots
}

// Roots caches open os.Root handles by directory, so opening thousands of
// files of a directory artifact does not reopen the task directory each
// time. Safe for concurrent use.
type Roots struct {
	mu    sync.Mutex
	roots map[string]*os.Root
}

func (rs *Roots) open(dir string) (*os.Root, func(), error) {
	if rs == nil {
		r, err := os.OpenRoot(dir)
		if err != nil {
			return nil, nil, err
		}
		return r, func() { _ = r.Close() }, nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r, ok := rs.roots[dir]; ok {
		return r, func() {}, nil
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, err
	}
	if rs.roots == nil {
		rs.roots = map[string]*os.Root{}
	}
	rs.roots[dir] = r
	return r, func() {}, nil
}

// Close closes the cached handles; Files opened later open their own.
func (rs *Roots) Close() error {
	if rs == nil {
		return nil
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var errs []error
	for _, r := range rs.roots {
		errs = append(errs, r.Close())
	}
	rs.roots = nil
	return errors.Join(errs...)
}

// File is an engines.File backed by a host file.
type File struct {
	path string // host path opened by Open
	size int64
	mode fs.FileMode
	// root, rel: when set, Open goes through the os.Root (relative paths).
	root  string
	rel   string
	roots *Roots
	gone  bool // vanished before it could be stat'ed
}

var _ engines.File = (*File)(nil)

// Open opens the file for reading. It returns an error wrapping
// engines.ErrNotFound if the file no longer exists.
func (f *File) Open() (io.ReadCloser, error) {
	if f.gone {
		return nil, fmt.Errorf("opening %s: %w", f.path, engines.ErrNotFound)
	}
	var (
		r   *os.File
		err error
	)
	if f.root != "" {
		var (
			root    *os.Root
			release func()
		)
		root, release, err = f.roots.open(f.root)
		if err == nil {
			r, err = root.Open(f.rel)
			release()
		}
	} else {
		r, err = os.Open(f.path)
	}
	if err != nil {
		return nil, classify(f.path, err)
	}
	return r, nil
}

// Size is the file's size in bytes when it was found, or -1 when it had
// already vanished.
func (f *File) Size() int64 { return f.size }

// HostPath is the file's path on the host, symlinks resolved.
func (f *File) HostPath() string { return f.path }

// Mode is the file's mode bits.
func (f *File) Mode() fs.FileMode { return f.mode }

// classify maps an os error on path to the engines sentinels.
func classify(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", path, engines.ErrNotFound)
	case errors.Is(err, engines.ErrNotFound), errors.Is(err, engines.ErrOutsideTaskDir):
		return err
	case strings.Contains(err.Error(), "path escapes from parent"):
		// os.Root's (unexported) escape error.
		return fmt.Errorf("%s: %w", path, engines.ErrOutsideTaskDir)
	}
	return fmt.Errorf("reading %s: %w", path, err)
}

// resolved is a path after the containment rules.
type resolved struct {
	real string // host path, symlinks resolved
	root string // containment root (real task dir) for relative paths, else ""
	rel  string // real relative to root (for os.Root)
}

// resolve applies the path rules to p.
func (d Dir) resolve(p string) (resolved, error) {
	if p == "" {
		p = "."
	}
	if filepath.IsAbs(p) {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return resolved{}, classify(p, err)
		}
		return resolved{real: real}, nil
	}
	native := filepath.FromSlash(p)
	if !filepath.IsLocal(native) && filepath.Clean(native) != "." {
		return resolved{}, fmt.Errorf("%s: %w", p, engines.ErrOutsideTaskDir)
	}
	rootReal, err := filepath.EvalSymlinks(d.Path)
	if err != nil {
		return resolved{}, fmt.Errorf("resolving task directory: %w", err)
	}
	real, err := filepath.EvalSymlinks(filepath.Join(rootReal, native))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// A dangling symlink that points outside is still outside.
			if out := d.lexicallyEscapes(rootReal, native); out {
				return resolved{}, fmt.Errorf("%s: %w", p, engines.ErrOutsideTaskDir)
			}
		}
		return resolved{}, classify(p, err)
	}
	rel, ok := within(rootReal, real)
	if !ok {
		return resolved{}, fmt.Errorf("%s: %w", p, engines.ErrOutsideTaskDir)
	}
	return resolved{real: real, root: rootReal, rel: rel}, nil
}

// lexicallyEscapes reports whether the first symlink met on the way to
// native (below root) has an absolute target or one leaving root. It is only
// used to classify dangling links.
func (d Dir) lexicallyEscapes(root, native string) bool {
	cur := root
	parts := strings.Split(native, string(filepath.Separator))
	for i, part := range parts {
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if err != nil {
			return false
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(next)
			if err != nil {
				return false
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			rest := filepath.Join(append([]string{target}, parts[i+1:]...)...)
			_, ok := within(root, filepath.Clean(rest))
			return !ok
		}
		cur = next
	}
	return false
}

// within returns p relative to root and whether p is root or below it.
func within(root, p string) (string, bool) {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return "", false
	}
	if rel == "." {
		return rel, true
	}
	return rel, filepath.IsLocal(rel)
}

// ExtractFile implements engines.ResultSet.ExtractFile for the task
// directory; see the package documentation for the rules.
func (d Dir) ExtractFile(ctx context.Context, p string) (engines.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := d.resolve(p)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(r.real)
	if err != nil {
		return nil, classify(p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", p, engines.ErrNotAFile)
	}
	return &File{path: r.real, size: fi.Size(), mode: fi.Mode(), root: r.root, rel: r.rel, roots: d.Roots}, nil
}

// ExtractFolder implements engines.ResultSet.ExtractFolder for the task
// directory; see the package documentation for the rules.
func (d Dir) ExtractFolder(ctx context.Context, p string, fn func(rel string, f engines.File) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := d.resolve(p)
	if err != nil {
		return err
	}
	fi, err := os.Stat(r.real)
	if err != nil {
		return classify(p, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %w", p, engines.ErrNotAFolder)
	}
	// Containment root for symlinks met during the walk: the task
	// directory for relative folders; none for absolute ones.
	root := r.root
	return filepath.WalkDir(r.real, func(path string, de fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, _ := filepath.Rel(r.real, path)
		slashRel := filepath.ToSlash(rel)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if path == r.real {
					return classify(p, err)
				}
				// A directory vanished mid-walk: nothing left in it.
				return nil
			}
			return fmt.Errorf("walking %s: %w", p, err)
		}
		if de.IsDir() {
			return nil
		}
		f := &File{path: path, roots: d.Roots}
		switch t := de.Type(); {
		case t.IsRegular():
			info, err := de.Info()
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("walking %s: %w", p, err)
				}
				f.gone, f.size = true, -1
			} else {
				f.size, f.mode = info.Size(), info.Mode()
			}
		case t&fs.ModeSymlink != 0:
			target, err := filepath.EvalSymlinks(path)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					d.skip(slashRel, fmt.Errorf("dangling symlink: %w", engines.ErrNotFound))
					return nil
				}
				return fmt.Errorf("walking %s: %w", p, err)
			}
			if root != "" {
				if _, ok := within(root, target); !ok {
					d.skip(slashRel, engines.ErrOutsideTaskDir)
					return nil
				}
			}
			info, err := os.Stat(target)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					f.gone, f.size = true, -1
					break
				}
				return fmt.Errorf("walking %s: %w", p, err)
			}
			if !info.Mode().IsRegular() {
				// Symlinks to directories are not followed (cycles).
				return nil
			}
			f.path, f.size, f.mode = target, info.Size(), info.Mode()
		default:
			return nil // sockets, fifos, devices
		}
		if root != "" && !f.gone {
			if rel, ok := within(root, f.path); ok {
				f.root, f.rel = root, rel
			}
		}
		return fn(slashRel, f)
	})
}

func (d Dir) skip(rel string, why error) {
	if d.Skipped != nil {
		d.Skipped(rel, why)
	}
}
