package release

import (
	"archive/tar"
	"archive/zip"
	"compress/flate"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// ArchiveKind is the archive format of a platform's release.
type ArchiveKind string

// Archive formats: zip for Windows, gzip-compressed tar elsewhere.
const (
	TarGz ArchiveKind = "tar.gz"
	Zip   ArchiveKind = "zip"
)

// KindFor returns the archive format used for goos.
func KindFor(goos string) ArchiveKind {
	if goos == "windows" {
		return Zip
	}
	return TarGz
}

// Fixed file modes of archive entries.
const (
	dirMode  = 0o755
	execMode = 0o755
	fileMode = 0o644
)

// entry is one regular file of an archive.
type entry struct {
	// Name is the slash-separated path below the archive's top directory.
	Name string
	// Exec marks the worker binary (mode 0755; others are 0644).
	Exec bool
	// Open returns the content; it is called once, while writing.
	Open func() (io.ReadCloser, error)
	// Size is the content's length in bytes (tar headers need it first).
	Size int64
}

// writeArchive writes entries below the directory top/ as a kind archive to
// w. The output depends only on its arguments: entries are sorted by name,
// every entry (and the top directory) has mtime mtime (whole seconds, UTC),
// owner and group 0 with empty names, and mode 0755 (directory, binary) or
// 0644; the gzip header carries no name and no time; zip entries are
// deflated at the best compression with their times from mtime.
func writeArchive(w io.Writer, kind ArchiveKind, top string, mtime time.Time, entries []entry) error {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b entry) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Name == sorted[i-1].Name {
			return fmt.Errorf("writing archive %s: duplicate entry %q", top, sorted[i].Name)
		}
	}
	mtime = mtime.UTC().Truncate(time.Second)
	switch kind {
	case TarGz:
		return writeTarGz(w, top, mtime, sorted)
	case Zip:
		return writeZip(w, top, mtime, sorted)
	}
	return fmt.Errorf("writing archive %s: unknown archive kind %q", top, kind)
}

func writeTarGz(w io.Writer, top string, mtime time.Time, entries []entry) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("writing %s.tar.gz: %w", top, err)
	}
	// Header left empty: no file name, no modification time (MTIME 0), OS
	// "unknown" (Go always writes 255).
	tw := tar.NewWriter(gz)
	hdr := func(name string, typ byte, mode, size int64) *tar.Header {
		return &tar.Header{
			Typeflag: typ,
			Name:     name,
			Mode:     mode,
			Size:     size,
			ModTime:  mtime,
			Format:   tar.FormatPAX,
		}
	}
	if err := tw.WriteHeader(hdr(top+"/", tar.TypeDir, dirMode, 0)); err != nil {
		return fmt.Errorf("writing %s.tar.gz: %w", top, err)
	}
	for _, e := range entries {
		mode := int64(fileMode)
		if e.Exec {
			mode = execMode
		}
		if err := tw.WriteHeader(hdr(path.Join(top, e.Name), tar.TypeReg, mode, e.Size)); err != nil {
			return fmt.Errorf("writing %s.tar.gz: %s: %w", top, e.Name, err)
		}
		if err := copyEntry(tw, e); err != nil {
			return fmt.Errorf("writing %s.tar.gz: %w", top, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing %s.tar.gz: %w", top, err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("writing %s.tar.gz: %w", top, err)
	}
	return nil
}

func writeZip(w io.Writer, top string, mtime time.Time, entries []entry) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestCompression)
	})
	dir := &zip.FileHeader{Name: top + "/", Method: zip.Store, Modified: mtime}
	dir.SetMode(fs.ModeDir | dirMode)
	if _, err := zw.CreateHeader(dir); err != nil {
		return fmt.Errorf("writing %s.zip: %w", top, err)
	}
	for _, e := range entries {
		h := &zip.FileHeader{Name: path.Join(top, e.Name), Method: zip.Deflate, Modified: mtime}
		if e.Exec {
			h.SetMode(execMode)
		} else {
			h.SetMode(fileMode)
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("writing %s.zip: %s: %w", top, e.Name, err)
		}
		if err := copyEntry(fw, e); err != nil {
			return fmt.Errorf("writing %s.zip: %w", top, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("writing %s.zip: %w", top, err)
	}
	return nil
}

func copyEntry(w io.Writer, e entry) error {
	r, err := e.Open()
	if err != nil {
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	defer r.Close()
	n, err := io.Copy(w, r)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	if n != e.Size {
		return fmt.Errorf("%s: read %d bytes, expected %d", e.Name, n, e.Size)
	}
	return nil
}
