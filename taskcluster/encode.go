package taskcluster

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// GzipLevel is the compression level of gzip-encoded uploads: klauspost's
// BestSpeed, which on build logs compresses within about 5 % of
// compress/gzip's default level at well over ten times its speed.
const GzipLevel = gzip.BestSpeed

// gzipInMemory is the largest compressed size kept in memory; larger
// output spills to a temporary file, so memory stays flat in the
// content's size.
const gzipInMemory = 1 << 20

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, GzipLevel)
	return w
}}

// Encoded is content compressed ahead of an upload (a PUT must declare its
// exact Content-Length).
type Encoded struct {
	// Open opens the compressed bytes from the start (any number of times).
	Open Opener
	// Size is the compressed length in bytes.
	Size int64
	// Release frees the bytes (removes the temporary file); call it once
	// after the upload.
	Release func()
}

// GzipEncode compresses the content open yields into a gzip stream (RFC
// 1952) with one streaming encoder, reading it once. Up to 1 MiB of output
// stays in memory; beyond that it spills to a temporary file in tmpDir
// ("" is os.TempDir()). Errors name the step: opening, reading or writing.
func GzipEncode(open Opener, tmpDir string) (*Encoded, error) {
	src, err := open()
	if err != nil {
		return nil, fmt.Errorf("gzip: opening content: %w", err)
	}
	defer src.Close()
	sp := &spill{dir: tmpDir}
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(sp)
	buf := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(writerOnly{zw}, readerOnly{src}, *buf)
	copyBufs.Put(buf)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	zw.Reset(io.Discard)
	gzipWriters.Put(zw)
	if err == nil {
		err = sp.finish()
	}
	if err != nil {
		sp.release()
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return sp.encoded(), nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// writerOnly and readerOnly keep io.CopyBuffer from detouring through
// ReadFrom/WriteTo implementations that allocate their own buffers.
type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

// spill is an io.Writer that keeps the first gzipInMemory bytes in memory
// and moves everything to a temporary file once that is exceeded.
type spill struct {
	dir string
	mem bytes.Buffer
	f   *os.File
	n   int64
}

func (s *spill) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	if s.f == nil && s.mem.Len()+len(p) <= gzipInMemory {
		return s.mem.Write(p)
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "upload-*.gz")
		if err != nil {
			return 0, fmt.Errorf("writing compressed content: %w", err)
		}
		s.f = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, fmt.Errorf("writing compressed content: %w", err)
		}
		s.mem = bytes.Buffer{}
	}
	n, err := s.f.Write(p)
	if err != nil {
		err = fmt.Errorf("writing compressed content: %w", err)
	}
	return n, err
}

func (s *spill) finish() error {
	if s.f == nil {
		return nil
	}
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("writing compressed content: %w", err)
	}
	return nil
}

func (s *spill) release() {
	if s.f != nil {
		_ = s.f.Close()
		_ = os.Remove(s.f.Name())
	}
}

func (s *spill) encoded() *Encoded {
	if s.f == nil {
		b := s.mem.Bytes()
		return &Encoded{
			Open:    func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
			Size:    int64(len(b)),
			Release: func() {},
		}
	}
	name := s.f.Name()
	return &Encoded{
		Open:    func() (io.ReadCloser, error) { return os.Open(name) },
		Size:    s.n,
		Release: func() { _ = os.Remove(name) },
	}
}

// MinCompressSample is the smallest sample Compressible judges.
const MinCompressSample = 512

// CompressSample is how many leading bytes Compressible looks at.
const CompressSample = 64 << 10

var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(io.Discard, flate.BestSpeed)
	return w
}}

// countWriter counts the bytes written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// Compressible tells, from a sample of the first bytes of some content
// (up to CompressSample of them), whether gzip would shrink it by at least
// 10 %: the sample is deflated at the fastest level and the output
// counted. Random, encrypted or already compressed bytes are not
// compressible. A sample under MinCompressSample bytes (the whole of a
// small file) says too little and counts as compressible.
func Compressible(sample []byte) bool {
	if len(sample) > CompressSample {
		sample = sample[:CompressSample]
	}
	if len(sample) < MinCompressSample {
		return true
	}
	var n countWriter
	fw := flateWriters.Get().(*flate.Writer)
	fw.Reset(&n)
	_, err := fw.Write(sample)
	if err == nil {
		err = fw.Close()
	}
	flateWriters.Put(fw)
	if err != nil {
		return true
	}
	return int64(n) < int64(len(sample))*9/10
}
