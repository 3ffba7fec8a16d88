package mounts

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/bodgit/sevenzip"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	fastxz "github.com/mikelolasagasti/xz"
	"github.com/minio/minlz"
	"github.com/nwaples/rardecode/v2"
	"github.com/pierrec/lz4/v4"
	"github.com/sorairolake/lzip-go"
)

// The formats are read with each format's own library, not through a
// library unifying them: github.com/mholt/archives registers bzip2, zstd
// and xz compressors for zip in its init, which linked three encoders the
// worker never uses, beside duplicate bzip2, xz and gzip readers (0.65 MB
// of a linux/amd64 worker in all). The tests still write their archives
// with it.

// decompressor reads one compression format: a fileMount format, and the
// compression of a tar.<c> archive format.
type decompressor struct {
	// match reports whether a stream starting with head (its first bytes,
	// up to 16) is in the format; nil for brotli, which has no magic
	// number (its content is checked while it is decompressed).
	match func(head []byte) bool
	open  func(io.Reader) (io.ReadCloser, error)
}

// prefix matches streams starting with magic.
func prefix(magic string) func([]byte) bool {
	return func(head []byte) bool { return bytes.HasPrefix(head, []byte(magic)) }
}

// compressions are the fileMount formats (upstream fileMount.format) and the
// compressions of the tar.* archive formats. Magic numbers: each format's
// specification (gzip RFC 1952, zlib RFC 1950, xz, zstd RFC 8878, lz4
// frame, lzip, the snappy and MinLZ framing formats' stream identifiers).
var compressions = map[string]decompressor{
	"br": {open: func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(brotli.NewReader(r)), nil }},
	"bz2": {match: func(h []byte) bool { return len(h) >= 4 && string(h[:3]) == "BZh" && h[3] >= '1' && h[3] <= '9' },
		open: func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(bzip2.NewReader(r)), nil }},
	"gz": {match: prefix("\x1f\x8b"), open: func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }},
	"lz": {match: prefix("LZIP"), open: func(r io.Reader) (io.ReadCloser, error) {
		zr, err := lzip.NewReader(r)
		return io.NopCloser(zr), err
	}},
	"lz4": {match: prefix("\x04\x22\x4d\x18"), open: func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(lz4.NewReader(r)), nil }},
	"mz":  {match: prefix("\xff\x06\x00\x00MinLz"), open: func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(minlz.NewReader(r)), nil }},
	"sz":  {match: prefix("\xff\x06\x00\x00sNaPpY"), open: func(r io.Reader) (io.ReadCloser, error) { return io.NopCloser(s2.NewReader(r)), nil }},
	"xz": {match: prefix("\xfd7zXZ\x00"), open: func(r io.Reader) (io.ReadCloser, error) {
		xr, err := fastxz.NewReader(r, 0)
		return io.NopCloser(xr), err
	}},
	"zst": {match: prefix("\x28\xb5\x2f\xfd"), open: func(r io.Reader) (io.ReadCloser, error) {
		zr, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}},
	// zlib: compression method 8 (deflate) and a header checksum (CMF*256+FLG a multiple of 31).
	"zz": {match: func(h []byte) bool { return len(h) >= 2 && h[0]&0x0f == 8 && (uint(h[0])<<8|uint(h[1]))%31 == 0 },
		open: func(r io.Reader) (io.ReadCloser, error) { return zlib.NewReader(r) }},
}

// archiveMagic are the signatures of the archive formats read from their
// start: 7z, rar 1.5 to 4 and rar 5, zip (a local file header, or the end
// of an empty archive).
var archiveMagic = map[string][]string{
	"7z":  {"7z\xbc\xaf\x27\x1c"},
	"rar": {"Rar!\x1a\x07\x00", "Rar!\x1a\x07\x01\x00"},
	"zip": {"PK\x03\x04", "PK\x05\x06"},
}

// checkArchiveFormat reports whether format is a readOnlyDirectory or
// writableDirectoryCache format (upstream enum: 7z, rar, tar, tar.<c> for
// each compression c, zip).
func checkArchiveFormat(format string) error {
	if _, ok := archiveMagic[format]; ok || format == "tar" {
		return nil
	}
	if c, ok := strings.CutPrefix(format, "tar."); ok {
		if _, ok := compressions[c]; ok {
			return nil
		}
	}
	return fmt.Errorf("unsupported archive format %q", format)
}

// looksLike reports whether src, read from its start, is an archive of
// format: its signature, a compression's magic number, or for tar a valid
// first header (or an empty archive's zero blocks). src is left at its
// start.
func looksLike(src source, format string) (bool, error) {
	head := make([]byte, 512)
	n, err := io.ReadFull(src, head)
	if _, serr := src.Seek(0, io.SeekStart); serr != nil {
		return false, serr
	}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	head = head[:n]
	if sigs, ok := archiveMagic[format]; ok {
		for _, sig := range sigs {
			if bytes.HasPrefix(head, []byte(sig)) {
				return true, nil
			}
		}
		return false, nil
	}
	if c, ok := strings.CutPrefix(format, "tar."); ok {
		m := compressions[c].match
		return m == nil || m(head[:min(len(head), 16)]), nil
	}
	if n < len(head) {
		return false, nil // not even one header block
	}
	// The first header, with what it needs after its block (a pax or GNU
	// long-name header's data, then the next header).
	_, err = tar.NewReader(src).Next()
	if _, serr := src.Seek(0, io.SeekStart); serr != nil {
		return false, serr
	}
	return err == nil || errors.Is(err, io.EOF), nil
}

// entry is one member of an archive, as extract handles it.
type entry struct {
	name     string      // the name in the archive, slash-separated
	mode     fs.FileMode // type bits and permissions
	link     string      // a symlink's target; a hard link's target entry
	hardLink bool
	modTime  time.Time // zero when the archive has none
	open     func() (io.ReadCloser, error)
}

// walkArchive calls handle for each entry of the archive src in format
// (checked by checkArchiveFormat), in archive order, until handle or the
// archive fails or ctx ends.
func walkArchive(ctx context.Context, src source, format string, handle func(entry) error) error {
	each := func(e entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return handle(e)
	}
	switch format {
	case "zip":
		return walkZip(src, each)
	case "7z":
		size, err := src.Seek(0, io.SeekEnd)
		if err != nil {
			return err
		}
		zr, err := sevenzip.NewReader(src, size)
		if err != nil {
			return err
		}
		for _, f := range zr.File {
			fi := f.FileInfo()
			if err := each(entry{name: f.Name, mode: fi.Mode(), modTime: f.Modified, open: func() (io.ReadCloser, error) { return f.Open() }}); err != nil {
				return err
			}
		}
		return nil
	case "rar":
		rr, err := rardecode.NewReader(src)
		if err != nil {
			return err
		}
		for {
			h, err := rr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := each(entry{name: h.Name, mode: h.Mode(), modTime: h.ModificationTime, open: func() (io.ReadCloser, error) { return io.NopCloser(rr), nil }}); err != nil {
				return err
			}
		}
	}
	var in io.Reader = src
	if c, ok := strings.CutPrefix(format, "tar."); ok {
		rc, err := compressions[c].open(src)
		if err != nil {
			return err
		}
		defer rc.Close()
		in = rc
	}
	return walkTar(in, each)
}

// walkTar calls each for every entry of the tar stream in.
func walkTar(in io.Reader, each func(entry) error) error {
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue // a pax global header (git archive writes one): no entry
		}
		e := entry{name: h.Name, mode: h.FileInfo().Mode(), link: h.Linkname, hardLink: h.Typeflag == tar.TypeLink,
			modTime: h.ModTime, open: func() (io.ReadCloser, error) { return io.NopCloser(tr), nil }}
		if err := each(e); err != nil {
			return err
		}
	}
}

// maxZipLinkTarget bounds a zip symlink's target, stored as its content.
const maxZipLinkTarget = 32 << 10

// walkZip calls each for every entry of the zip archive src. Besides
// store and deflate it reads bzip2 (method 12), zstd (93) and xz (95)
// entries (APPNOTE 4.4.5).
func walkZip(src source, each func(entry) error) error {
	size, err := src.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(src, size)
	if err != nil {
		return err
	}
	zr.RegisterDecompressor(12, func(r io.Reader) io.ReadCloser { return io.NopCloser(bzip2.NewReader(r)) })
	zr.RegisterDecompressor(93, func(r io.Reader) io.ReadCloser {
		zd, err := zstd.NewReader(r)
		if err != nil {
			return io.NopCloser(errReader{err})
		}
		return zd.IOReadCloser()
	})
	zr.RegisterDecompressor(95, func(r io.Reader) io.ReadCloser {
		xr, err := fastxz.NewReader(r, 0)
		if err != nil {
			return io.NopCloser(errReader{err})
		}
		return io.NopCloser(xr)
	})
	for _, f := range zr.File {
		e := entry{name: f.Name, mode: f.Mode(), modTime: f.Modified, open: f.Open}
		if e.mode&fs.ModeSymlink != 0 {
			if e.link, err = zipLinkTarget(f); err != nil {
				return fmt.Errorf("%w: entry %q: %v", ErrBadContent, f.Name, err)
			}
		}
		if err := each(e); err != nil {
			return err
		}
	}
	return nil
}

// zipLinkTarget reads a zip symlink's target (its content).
func zipLinkTarget(f *zip.File) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxZipLinkTarget+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxZipLinkTarget {
		return "", fmt.Errorf("symlink target longer than %d bytes", maxZipLinkTarget)
	}
	return string(b), nil
}

// errReader fails every read with err.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
