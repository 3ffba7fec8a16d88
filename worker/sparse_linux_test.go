package worker

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/task"
)

// TestRunModeKeepsSparseArtifactSparse: run mode's DirSink copies a sparse
// 1 GiB artifact (holes around 1 MiB of data) without allocating the
// holes: the copy has the same size and content hash but uses about as
// much disk as its data.
func TestRunModeKeepsSparseArtifactSparse(t *testing.T) {
	const size = 1 << 30
	src := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(src)
	require.NoError(t, err)
	_, err = f.WriteAt(make([]byte, 1<<20), size/2) // zeros written as data
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("middle"), size/2+12345)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(size))
	require.NoError(t, f.Close())

	out := t.TempDir()
	sink := &DirSink{Dir: out}
	err = sink.Publish(context.Background(), task.Artifact{
		Name: "public/disk.img", Kind: task.ArtifactFile, Expires: time.Now().Add(time.Hour), Size: size,
		Open: func() (io.ReadCloser, error) { return os.Open(src) }, Path: src,
	})
	require.NoError(t, err)
	arts := sink.Artifacts()
	require.Len(t, arts, 1)
	var st syscall.Stat_t
	dst := filepath.Join(out, arts[0].Path)
	require.NoError(t, syscall.Stat(dst, &st))
	assert.Equal(t, int64(size), st.Size)
	assert.Less(t, st.Blocks*512, int64(8<<20), "the copy allocates its data, not its holes")
	data := make([]byte, 6)
	df, err := os.Open(dst)
	require.NoError(t, err)
	defer df.Close()
	_, err = df.ReadAt(data, size/2+12345)
	require.NoError(t, err)
	assert.Equal(t, "middle", string(data))
}
