package release

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func testEntries() []entry {
	return []entry{
		bytesEntry("worker", bytes.Repeat([]byte("binary "), 1000), true),
		bytesEntry("README.md", []byte("# read me\n"), false),
		bytesEntry("LICENSE", []byte("license\n"), false),
	}
}

// TestWriteArchiveDeterministic: the bytes depend on the entries' names and
// contents and on the time only, not on entry order, the wall clock or the
// local time zone.
func TestWriteArchiveDeterministic(t *testing.T) {
	epoch := time.Date(2026, 11, 30, 1, 2, 3, 0, time.UTC)
	for _, kind := range []ArchiveKind{TarGz, Zip} {
		t.Run(string(kind), func(t *testing.T) {
			var a, b bytes.Buffer
			require.NoError(t, writeArchive(&a, kind, "top", epoch, testEntries()))
			reversed := testEntries()
			reversed[0], reversed[2] = reversed[2], reversed[0]
			// Same instant in another zone and with sub-second noise.
			other := epoch.In(time.FixedZone("X", 5*3600+1800)).Add(400 * time.Millisecond)
			require.NoError(t, writeArchive(&b, kind, "top", other, reversed))
			require.Equal(t, a.Bytes(), b.Bytes())

			var c bytes.Buffer
			require.NoError(t, writeArchive(&c, kind, "top", epoch.Add(time.Second), testEntries()))
			require.NotEqual(t, a.Bytes(), c.Bytes(), "the time is recorded")
		})
	}
}

func TestWriteArchiveTarHeaders(t *testing.T) {
	epoch := time.Date(2026, 11, 30, 1, 2, 3, 0, time.UTC)
	var buf bytes.Buffer
	require.NoError(t, writeArchive(&buf, TarGz, "top", epoch, testEntries()))
	gz, err := gzip.NewReader(&buf)
	require.NoError(t, err)
	require.Empty(t, gz.Name)
	require.Empty(t, gz.Comment)
	require.True(t, gz.ModTime.IsZero())
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
		require.Zero(t, h.Uid)
		require.Zero(t, h.Gid)
		require.Empty(t, h.Uname)
		require.Empty(t, h.Gname)
		require.Equal(t, epoch, h.ModTime.UTC())
		require.True(t, h.AccessTime.IsZero())
		require.True(t, h.ChangeTime.IsZero())
		require.Empty(t, h.PAXRecords)
		switch h.Name {
		case "top/":
			require.Equal(t, byte(tar.TypeDir), h.Typeflag)
			require.Equal(t, int64(0o755), h.Mode)
		case "top/worker":
			require.Equal(t, int64(0o755), h.Mode)
		default:
			require.Equal(t, int64(0o644), h.Mode)
		}
	}
	require.Equal(t, []string{"top/", "top/LICENSE", "top/README.md", "top/worker"}, names)
}

func TestWriteArchiveZipHeaders(t *testing.T) {
	epoch := time.Date(2026, 11, 30, 1, 2, 3, 0, time.UTC)
	var buf bytes.Buffer
	require.NoError(t, writeArchive(&buf, Zip, "top", epoch, testEntries()))
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		require.True(t, f.Modified.Equal(epoch), f.Name)
		switch f.Name {
		case "top/":
			require.True(t, f.Mode().IsDir())
		case "top/worker":
			require.Equal(t, "-rwxr-xr-x", f.Mode().String())
			require.Equal(t, zip.Deflate, f.Method)
		default:
			require.Equal(t, "-rw-r--r--", f.Mode().String())
		}
	}
	require.Equal(t, []string{"top/", "top/LICENSE", "top/README.md", "top/worker"}, names)
}

func TestWriteArchiveRejects(t *testing.T) {
	dup := append(testEntries(), bytesEntry("LICENSE", nil, false))
	require.ErrorContains(t, writeArchive(io.Discard, TarGz, "top", time.Unix(0, 0), dup), "duplicate entry")
	require.ErrorContains(t, writeArchive(io.Discard, "rar", "top", time.Unix(0, 0), testEntries()), "unknown archive kind")
	short := testEntries()
	short[0].Size++
	require.Error(t, writeArchive(io.Discard, Zip, "top", time.Unix(0, 0), short))
}
