package tasklog_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/tasklog"
	"github.com/workergen/workergen/task"
)

// recordingSink records artifacts in order.
type recordingSink struct {
	mu   sync.Mutex
	arts []task.Artifact
}

func (s *recordingSink) Publish(_ context.Context, a task.Artifact) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arts = append(s.arts, a)
	return nil
}

func TestLiveLogStreamsWhileRunningThenBecomesLink(t *testing.T) {
	p, err := tasklog.New(plugins.Options{Config: json.RawMessage(`{"liveLog": {"listenAddress": "127.0.0.1:0"}}`)})
	require.NoError(t, err)
	defer p.Close()

	dir := t.TempDir()
	logPath := filepath.Join(dir, "live_backing.log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	defer f.Close()
	sink := &recordingSink{}
	now := time.Now()
	tc := &task.Context{TaskID: "t", Definition: task.Definition{Payload: json.RawMessage(`{}`), Deadline: now.Add(time.Hour), Expires: now.Add(2 * time.Hour)},
		Log: task.NewLog(f), LogPath: logPath, Artifacts: sink, TaskDir: dir}
	ctx := context.Background()
	tp, err := p.NewTaskPlugin(ctx, tc)
	require.NoError(t, err)
	_, _ = tc.Log.Write([]byte("before start\n"))
	require.NoError(t, tp.Started(ctx, nil))

	require.Len(t, sink.arts, 1)
	ref := sink.arts[0]
	assert.Equal(t, task.ArtifactReference, ref.Kind)
	assert.Equal(t, tasklog.DefaultLiveName, ref.Name)

	resp, err := http.Get(ref.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	buf := make([]byte, len("before start\n"))
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	assert.Equal(t, "before start\n", string(buf), "what was written before the reader came")

	_, _ = tc.Log.Write([]byte("while running\n"))
	buf = make([]byte, len("while running\n"))
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err)
	assert.Equal(t, "while running\n", string(buf), "streamed as it is written")

	_, _ = tc.Log.Write([]byte("last line without newline"))
	require.NoError(t, tp.Finished(ctx, task.Resolution{State: task.Completed}))
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the stream ends when the run finishes")
	assert.Equal(t, "last line without newline", string(rest))
	require.NoError(t, tp.Dispose(ctx))

	var names []string
	for _, a := range sink.arts {
		names = append(names, string(a.Kind)+":"+a.Name)
	}
	assert.Equal(t, []string{"reference:public/logs/live.log", "file:public/logs/live_backing.log", "link:public/logs/live.log"}, names)

	resp2, err := http.Get(ref.URL)
	require.NoError(t, err)
	resp2.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp2.StatusCode, "finished streams are gone")
}

func TestLiveLogBadAddressNamesField(t *testing.T) {
	_, err := tasklog.New(plugins.Options{Config: json.RawMessage(`{"liveLog": {"listenAddress": "not an address"}}`)})
	require.ErrorContains(t, err, "plugins.tasklog.liveLog.listenAddress")
}

// TestLiveLogSlowReaderNeitherBlocksNorBuffers: a live reader that does
// not read does not hold the task log up (its writes only notify; the
// reader's handler reads the backing file at the reader's pace, so nothing
// is queued in memory for it), and once it reads it gets every byte.
func TestLiveLogSlowReaderNeitherBlocksNorBuffers(t *testing.T) {
	p, err := tasklog.New(plugins.Options{Config: json.RawMessage(`{"liveLog": {"listenAddress": "127.0.0.1:0"}}`)})
	require.NoError(t, err)
	defer p.Close()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "live_backing.log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	defer f.Close()
	sink := &recordingSink{}
	now := time.Now()
	tc := &task.Context{TaskID: "t", Definition: task.Definition{Payload: json.RawMessage(`{}`), Deadline: now.Add(time.Hour), Expires: now.Add(2 * time.Hour)},
		Log: task.NewLog(f), LogPath: logPath, Artifacts: sink, TaskDir: dir}
	ctx := context.Background()
	tp, err := p.NewTaskPlugin(ctx, tc)
	require.NoError(t, err)
	require.NoError(t, tp.Started(ctx, nil))
	resp, err := http.Get(sink.arts[0].URL)
	require.NoError(t, err)
	defer resp.Body.Close()

	// 16 MiB, far more than the socket buffers hold, while nobody reads.
	chunk := make([]byte, 256<<10)
	for i := range chunk {
		chunk[i] = byte('a' + i%26)
	}
	const chunks = 64
	for range chunks {
		n, err := tc.Log.Write(chunk)
		require.NoError(t, err)
		require.Equal(t, len(chunk), n)
	}
	require.NoError(t, tp.Finished(ctx, task.Resolution{State: task.Completed}))
	got, err := io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	assert.Equal(t, int64(chunks*len(chunk)), got, "the slow reader gets every byte")
	require.NoError(t, tp.Dispose(ctx))
}
