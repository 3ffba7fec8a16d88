package journal

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockingFlush replaces flushFile for a test by one that counts its
// calls, reports each start on started and waits for release (closed:
// every call goes through) before returning fail's value.
type blockingFlush struct {
	calls   atomic.Int32
	started chan string
	release chan struct{}
	fail    error
}

func replaceFlush(t *testing.T, fail error) *blockingFlush {
	t.Helper()
	b := &blockingFlush{started: make(chan string, 16), release: make(chan struct{}), fail: fail}
	old := flushFile
	flushFile = func(f *os.File) error {
		b.calls.Add(1)
		b.started <- f.Name()
		<-b.release
		return b.fail
	}
	t.Cleanup(func() { flushFile = old })
	return b
}

// returnsWithin reports whether fn returns within d (fn keeps running in
// the background otherwise).
func returnsWithin(d time.Duration, fn func()) (done <-chan struct{}, returned bool) {
	ch := make(chan struct{})
	go func() { defer close(ch); fn() }()
	select {
	case <-ch:
		return ch, true
	case <-time.After(d):
		return ch, false
	}
}

func testRecord(runID int) *Record {
	return &Record{TaskID: "fN1SbArXTPSVFNUvaOlinQ", RunID: runID, RunDir: "/tasks/x", TakenUntil: time.Now().Add(time.Hour)}
}

// Put returns once the record is in the kernel and flushes it in the
// background: the next process reads it before the flush ends, Sync and
// Close wait for the flush, and a free mark is not flushed at all.
func TestPutFlushesInTheBackground(t *testing.T) {
	fl := replaceFlush(t, nil)
	dir := filepath.Join(t.TempDir(), "journal")
	j, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, j.Reserve(1))

	_, returned := returnsWithin(10*time.Second, func() { require.NoError(t, j.Put(testRecord(0))) })
	require.True(t, returned, "Put waited for the flush")
	path := <-fl.started
	assert.Equal(t, filepath.Join(dir, "slot-0"), path)

	// Another process (recovery after kill -9) reads the record already.
	other, err := Open(dir)
	require.NoError(t, err)
	recs, bad, err := other.List()
	require.NoError(t, err)
	require.Empty(t, bad)
	require.Len(t, recs, 1)
	assert.Equal(t, 0, recs[0].RunID)
	require.NoError(t, other.Close())

	syncDone, returned := returnsWithin(50*time.Millisecond, j.Sync)
	assert.False(t, returned, "Sync returned while the flush was in flight")
	close(fl.release)
	<-syncDone
	assert.Equal(t, int32(1), fl.calls.Load())

	require.NoError(t, j.Remove("fN1SbArXTPSVFNUvaOlinQ", 0))
	j.Sync()
	assert.Equal(t, int32(1), fl.calls.Load(), "the free mark is not flushed")
	require.NoError(t, j.Close())
}

// Close waits for a flush in flight before it closes the slot files.
func TestCloseWaitsForTheFlush(t *testing.T) {
	fl := replaceFlush(t, nil)
	j, err := Open(filepath.Join(t.TempDir(), "journal"))
	require.NoError(t, err)
	require.NoError(t, j.Put(testRecord(0)))
	<-fl.started
	closed, returned := returnsWithin(50*time.Millisecond, func() { require.NoError(t, j.Close()) })
	assert.False(t, returned, "Close returned while the flush was in flight")
	close(fl.release)
	<-closed
}

// A flush that fails is told to OnFlushError with the slot file; the
// record stays written, and the next Put of the run works.
func TestFlushErrorIsReported(t *testing.T) {
	fl := replaceFlush(t, errors.New("EIO"))
	close(fl.release)
	dir := filepath.Join(t.TempDir(), "journal")
	j, err := Open(dir)
	require.NoError(t, err)
	defer j.Close()
	type report struct {
		path string
		err  error
	}
	reports := make(chan report, 4)
	j.OnFlushError(func(path string, err error) { reports <- report{path, err} })

	require.NoError(t, j.Put(testRecord(0)))
	select {
	case r := <-reports:
		assert.Equal(t, filepath.Join(dir, "slot-0"), r.path)
		assert.EqualError(t, r.err, "EIO")
	case <-time.After(10 * time.Second):
		t.Fatal("the failed flush was not reported")
	}
	require.NoError(t, j.Put(testRecord(0)))
	j.Sync()
	other, err := Open(dir)
	require.NoError(t, err)
	defer other.Close()
	recs, _, err := other.List()
	require.NoError(t, err)
	require.Len(t, recs, 1)
}
