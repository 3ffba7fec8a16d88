package taskcluster

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logText returns n bytes of build-log-like text (compresses about 4×).
func logText(n int) []byte {
	var b bytes.Buffer
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "2026-12-06T00:00:%02d.%03dZ INFO step %d: compiling src/pkg%d/file%d.go (%016x)\n",
			i/1000%60, i%1000, i, rng.IntN(200), rng.IntN(50), rng.Uint64())
	}
	return b.Bytes()[:n]
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{5}).Read(b)
	return b
}

func gunzip(t *testing.T, r io.Reader) []byte {
	t.Helper()
	zr, err := gzip.NewReader(r)
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}

func TestGzipEncodeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  []byte
		spill bool // more than gzipInMemory of output: a temporary file
	}{
		{"empty", nil, false},
		{"small text", logText(10 << 10), false},
		{"large text", logText(16 << 20), true},
		{"random", randomBytes(3 << 20), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			enc, err := GzipEncode(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tc.data)), nil }, dir)
			require.NoError(t, err)
			files, _ := os.ReadDir(dir)
			assert.Equal(t, tc.spill, len(files) == 1, "temporary file iff the output exceeds 1 MiB")
			for range 2 { // Open may be called per attempt
				rc, err := enc.Open()
				require.NoError(t, err)
				raw, err := io.ReadAll(rc)
				require.NoError(t, err)
				_ = rc.Close()
				assert.Equal(t, enc.Size, int64(len(raw)))
				assert.True(t, bytes.Equal(tc.data, gunzip(t, bytes.NewReader(raw))), "content round-trips")
			}
			enc.Release()
			files, _ = os.ReadDir(dir)
			assert.Empty(t, files, "Release removes the temporary file")
		})
	}
}

func TestGzipEncodeErrors(t *testing.T) {
	_, err := GzipEncode(func() (io.ReadCloser, error) { return nil, os.ErrNotExist }, t.TempDir())
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "opening content")

	boom := errors.New("disk on fire")
	dir := t.TempDir()
	_, err = GzipEncode(func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(randomBytes(2<<20)), iotestErr{boom})), nil
	}, dir)
	require.ErrorIs(t, err, boom)
	files, _ := os.ReadDir(dir)
	assert.Empty(t, files, "a failed encoding leaves no temporary file")

	_, err = GzipEncode(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(randomBytes(2 << 20))), nil },
		filepath.Join(dir, "missing"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "writing compressed content")
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func TestCompressible(t *testing.T) {
	assert.True(t, Compressible(logText(CompressSample)), "log text")
	assert.True(t, Compressible([]byte(strings.Repeat("a", 100))), "too short to judge")
	assert.False(t, Compressible(randomBytes(CompressSample)), "random bytes")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(logText(1 << 20))
	_ = zw.Close()
	assert.False(t, Compressible(gz.Bytes()), "gzip output")
	assert.False(t, Compressible(randomBytes(4<<20)), "a long sample is cut to CompressSample")
}

// BenchmarkGzipEncode is the compression step of a gzip-encoded upload
// (the task log, text artifacts): 32 MiB in, output in a temporary file.
//
//	go test -run '^$' -bench GzipEncode -benchmem ./taskcluster/
func BenchmarkGzipEncode(b *testing.B) {
	for _, kind := range []string{"text", "random"} {
		b.Run(kind, func(b *testing.B) {
			data := logText(32 << 20)
			if kind == "random" {
				data = randomBytes(32 << 20)
			}
			dir := b.TempDir()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			var size int64
			for b.Loop() {
				enc, err := GzipEncode(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, dir)
				if err != nil {
					b.Fatal(err)
				}
				size = enc.Size
				enc.Release()
			}
			b.ReportMetric(float64(len(data))/float64(size), "ratio")
		})
	}
	// The baseline: what uploads used before, compress/gzip at its default
	// level (as generic-worker does), to a discarded output.
	b.Run("text-compress-gzip-default", func(b *testing.B) {
		data := logText(32 << 20)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		var n countWriter
		for b.Loop() {
			n = 0
			zw, _ := gzip.NewWriterLevel(&n, gzip.DefaultCompression)
			_, _ = zw.Write(data)
			_ = zw.Close()
		}
		b.ReportMetric(float64(len(data))/float64(n), "ratio")
	})
}

// BenchmarkCompressible is the encoding decision's cost per artifact.
func BenchmarkCompressible(b *testing.B) {
	for _, kind := range []string{"text", "random"} {
		b.Run(kind, func(b *testing.B) {
			data := logText(CompressSample)
			if kind == "random" {
				data = randomBytes(CompressSample)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				Compressible(data)
			}
		})
	}
}

// BenchmarkLogUpload is the whole log path after a task: a 32 MiB log
// file compressed and PUT to a local server that discards it.
func BenchmarkLogUpload(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	c := &Client{RootURL: srv.URL}
	defer c.CloseIdleConnections()
	dir := b.TempDir()
	path := filepath.Join(dir, "live_backing.log")
	data := logText(32 << 20)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		enc, err := GzipEncode(func() (io.ReadCloser, error) { return os.Open(path) }, dir)
		if err != nil {
			b.Fatal(err)
		}
		err = c.Put(context.Background(), srv.URL+"/put", enc.Open, PutOptions{ContentLength: enc.Size, ContentEncoding: "gzip", ContentType: "text/plain"})
		enc.Release()
		if err != nil {
			b.Fatal(err)
		}
	}
}
