package artifacts_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
)

// retryingSink reads every file artifact twice, as an upload retry would,
// or never (skip), and records the contents.
type retryingSink struct {
	skip bool

	mu    sync.Mutex
	reads map[string][]string
}

func (s *retryingSink) Publish(_ context.Context, a task.Artifact) error {
	if a.Kind != task.ArtifactFile || s.skip {
		return nil
	}
	for range 2 {
		rc, err := a.Open()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		if s.reads == nil {
			s.reads = map[string][]string{}
		}
		s.reads[a.Name] = append(s.reads[a.Name], string(b))
		s.mu.Unlock()
	}
	return nil
}

// TestOpenTwice: the first Open hands out the reader opened for sniffing
// (with the sniffed bytes put back), the second opens the file again.
func TestOpenTwice(t *testing.T) {
	sink := &retryingSink{}
	big := make([]byte, 3000)
	for i := range big {
		big[i] = byte(i)
	}
	files := map[string]string{"noext": string(big), "small.txt": "abc"}
	c := plugintest.Case{}
	c.TaskDir = t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(c.TaskDir+"/"+name, []byte(content), 0o644))
	}
	res := runWithSink(t, c, sink, M{"type": "file", "path": "noext"}, M{"type": "file", "path": "small.txt"})
	require.Empty(t, res.Errors)
	assert.Equal(t, []string{string(big), string(big)}, sink.reads["noext"])
	assert.Equal(t, []string{"abc", "abc"}, sink.reads["small.txt"])
}

// TestNoDescriptorLeak: a sink that never opens an artifact does not leave
// the reader opened for sniffing behind.
func TestNoDescriptorLeak(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	c := plugintest.Case{TaskDir: t.TempDir()}
	for i := range 50 {
		require.NoError(t, os.MkdirAll(c.TaskDir+"/d", 0o755))
		require.NoError(t, os.WriteFile(fmt.Sprintf("%s/d/f%02d", c.TaskDir, i), []byte("no extension: sniffed"), 0o644))
	}
	before := openFDs(t)
	res := runWithSink(t, c, &retryingSink{skip: true}, M{"type": "directory", "path": "d"})
	require.Empty(t, res.Errors)
	assert.LessOrEqual(t, openFDs(t), before, "descriptors leaked")
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// runWithSink runs the artifacts plugin with a task.ArtifactSink that is not
// a plugintest.Sink (the Result then lists no artifacts).
func runWithSink(t *testing.T, c plugintest.Case, sink task.ArtifactSink, list ...M) *plugintest.Result {
	t.Helper()
	c.Plugins = []plugins.Plugin{newPlugin(t, 0)}
	c.ArtifactSink = sink
	arts := make([]any, len(list))
	for i, a := range list {
		arts[i] = a
	}
	c.Payload = M{"artifacts": arts}
	return plugintest.Run(t, c)
}
