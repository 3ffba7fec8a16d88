package mounts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrBadContent is wrapped by extraction errors that are the content's
// fault: not an archive of the stated format, or an entry that would land
// outside the mount's directory. The run is then malformed-payload.
var ErrBadContent = errors.New("bad mount content")

// checkFormat checks a mount's format against its kind.
func checkFormat(m Mount) error {
	if m.Format == "" {
		return nil
	}
	if m.kind() == kindFile {
		if _, ok := compressions[m.Format]; !ok {
			return fmt.Errorf("unsupported compression format %q", m.Format)
		}
		return nil
	}
	return checkArchiveFormat(m.Format)
}

// source is mount content ready to read: a downloaded file or inline bytes.
// Zip and 7z need random access, hence ReaderAt and Seeker.
type source interface {
	io.Reader
	io.ReaderAt
	io.Seeker
}

// extract unpacks the archive src (format as in checkArchiveFormat) into the
// directory dir, which it creates. Every entry is created through an
// os.Root on dir, so no entry, path component or symlink can reach outside
// it; entries with absolute names, ".." segments or symlinks whose target
// leaves dir are refused (ErrBadContent), and so is content that would
// write more than b allows (errTooBig). It returns the number of bytes
// written.
func extract(ctx context.Context, src source, format, dir string, b *budget) (int64, error) {
	if err := checkArchiveFormat(format); err != nil {
		return 0, err
	}
	// Check the magic bytes first: some readers (rar) do not give up
	// quickly on data that is not theirs.
	if ok, err := looksLike(src, format); err != nil {
		return 0, err
	} else if !ok {
		return 0, fmt.Errorf("%w: not a %s archive", ErrBadContent, format)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	var written int64
	handle := func(f entry) error {
		name, err := entryName(f.name)
		if err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		mode := f.mode
		if parent := filepath.Dir(name); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrBadContent, f.name, err)
			}
		}
		switch {
		case mode.IsDir():
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrBadContent, f.name, err)
			}
			_ = root.Chmod(name, mode.Perm()|0o700)
		case mode&fs.ModeSymlink != 0:
			if err := checkLinkTarget(name, f.link); err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrBadContent, f.name, err)
			}
			_ = root.Remove(name)
			if err := root.Symlink(f.link, name); err != nil {
				return fmt.Errorf("entry %q: %w", f.name, err)
			}
		case f.hardLink:
			old, err := entryName(f.link)
			if err != nil {
				return err
			}
			_ = root.Remove(name)
			if err := root.Link(old, name); err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrBadContent, f.name, err)
			}
		case mode.IsRegular():
			n, err := writeEntry(root, name, mode.Perm()|0o600, f, b)
			written += n
			if err != nil {
				return err
			}
		default:
			// Devices, fifos, sockets: not mount content; skipped.
			return nil
		}
		if !f.modTime.IsZero() && mode&fs.ModeSymlink == 0 {
			_ = root.Chtimes(name, f.modTime, f.modTime)
		}
		return nil
	}
	if err := walkArchive(ctx, src, format, handle); err != nil {
		if errors.Is(err, ErrBadContent) || ctx.Err() != nil {
			return written, err
		}
		var pe *fs.PathError
		if errors.As(err, &pe) && !strings.Contains(pe.Op, "read") {
			return written, err
		}
		return written, fmt.Errorf("%w: not a valid %s archive: %v", ErrBadContent, format, err)
	}
	return written, nil
}

// entryName cleans an archive entry name (slash-separated) into a path
// relative to the extraction directory.
func entryName(n string) (string, error) {
	clean := path.Clean(strings.ReplaceAll(n, `\`, "/"))
	if clean == "." || clean == "/" && n != "/" {
		return ".", nil
	}
	if strings.HasPrefix(clean, "/") || !filepath.IsLocal(filepath.FromSlash(clean)) {
		return "", fmt.Errorf("%w: entry %q leaves the mount directory", ErrBadContent, n)
	}
	return filepath.FromSlash(clean), nil
}

// checkLinkTarget refuses a symlink at name (relative to the extraction
// directory) whose target is absolute or resolves outside the directory.
func checkLinkTarget(name, target string) error {
	if target == "" {
		return errors.New("symlink without target")
	}
	t := filepath.FromSlash(target)
	if filepath.IsAbs(t) || filepath.VolumeName(t) != "" || strings.HasPrefix(target, "/") {
		return fmt.Errorf("symlink target %q is absolute", target)
	}
	if !filepath.IsLocal(filepath.Join(filepath.Dir(name), t)) {
		return fmt.Errorf("symlink target %q leaves the mount directory", target)
	}
	return nil
}

func writeEntry(root *os.Root, name string, perm fs.FileMode, f entry, b *budget) (int64, error) {
	in, err := f.open()
	if err != nil {
		return 0, fmt.Errorf("%w: entry %q: %v", ErrBadContent, f.name, err)
	}
	defer in.Close()
	_ = root.Remove(name)
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return 0, fmt.Errorf("%w: entry %q: %v", ErrBadContent, f.name, err)
	}
	n, err := io.Copy(b.writer(out), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errTooBig) {
		return n, err
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "write" {
			return n, fmt.Errorf("writing %q: %w", name, err)
		}
		return n, fmt.Errorf("%w: entry %q: %v", ErrBadContent, f.name, err)
	}
	return n, nil
}

// decompress writes src, decompressed with format ("" copies it as it is),
// to the file dst, creating it; root confines dst to the task directory.
// Output beyond what b allows is refused (errTooBig).
func decompress(src io.Reader, format string, root *os.Root, dst string, b *budget) (int64, error) {
	in := src
	if format != "" {
		d, ok := compressions[format]
		if !ok {
			return 0, fmt.Errorf("unsupported compression format %q", format)
		}
		rc, err := d.open(src)
		if err != nil {
			return 0, fmt.Errorf("%w: not valid %s content: %v", ErrBadContent, format, err)
		}
		defer rc.Close()
		in = rc
	}
	if parent := filepath.Dir(dst); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return 0, fmt.Errorf("%w: creating %q: %v", ErrBadContent, parent, err)
		}
	}
	if fi, err := root.Lstat(dst); err == nil && fi.IsDir() {
		return 0, fmt.Errorf("%w: %q already exists as a directory", ErrBadContent, dst)
	}
	out, err := root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("%w: creating %q: %v", ErrBadContent, dst, err)
	}
	n, err := io.Copy(b.writer(out), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, errTooBig) {
		return n, err
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "write" {
			return n, fmt.Errorf("writing %q: %w", dst, err)
		}
		if format != "" {
			return n, fmt.Errorf("%w: not valid %s content: %v", ErrBadContent, format, err)
		}
		return n, err
	}
	return n, nil
}
