package tasklog_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/plugins/tasklog"
	"github.com/workergen/workergen/task"
)

// preparingSink is a sink that can prepare artifacts (as the worker's
// Queue sink does) and records what it was asked to prepare.
type preparingSink struct {
	*plugintest.Sink
	mu       sync.Mutex
	prepared []task.Artifact
}

func (s *preparingSink) PrepareArtifact(a task.Artifact) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prepared = append(s.prepared, a)
}

// TestBackingLogPrepared: the backing log is handed to a sink that can
// prepare artifacts in the Prepare stage, with the name, content type,
// encoding and expiry it is published with at the end, so the early
// createArtifact and the upload agree; a payload without a backing log
// prepares nothing.
func TestBackingLogPrepared(t *testing.T) {
	cases := []struct {
		name    string
		dialect task.Dialect
		payload M
		want    string // "" for none
	}{
		{"default", "", M{}, tasklog.DefaultBackingName},
		{"custom name", "", M{"logs": M{"backing": "private/full.log"}}, "private/full.log"},
		{"no backing log", "", M{"features": M{"backingLog": false}}, ""},
		{"docker-worker log", task.DialectDockerWorker, M{"log": "public/my/live.log"}, "public/my/live_backing.log"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := tasklog.New(plugins.Options{Dialect: c.dialect})
			require.NoError(t, err)
			sink := &preparingSink{Sink: &plugintest.Sink{}}
			res := plugintest.Run(t, plugintest.Case{Plugins: []plugins.Plugin{p}, Payload: c.payload, ArtifactSink: sink})
			require.Empty(t, res.Errors)
			if c.want == "" {
				assert.Empty(t, sink.prepared)
				return
			}
			require.Len(t, sink.prepared, 1)
			prep := sink.prepared[0]
			assert.Equal(t, c.want, prep.Name)
			assert.Equal(t, task.ArtifactFile, prep.Kind)
			assert.Equal(t, int64(-1), prep.Size, "the log's length is not known yet")
			var published *plugintest.Recorded
			for _, a := range sink.Artifacts() {
				if a.Name == c.want {
					published = &a
				}
			}
			require.NotNil(t, published)
			assert.Equal(t, published.ContentType, prep.ContentType)
			assert.Equal(t, published.ContentEncoding, prep.ContentEncoding)
			assert.True(t, published.Expires.Equal(prep.Expires))
			assert.Equal(t, published.Path, prep.Path)
		})
	}
}
