package worker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/task"
)

// TestDirSinkReplacesReferencesAsTheQueue: run mode's sink accepts what the
// Queue's createArtifact accepts for a name published again: a reference
// replaced by a reference or a link (the live log: its stream while the
// task runs, then a link to the complete log); anything else is refused.
func TestDirSinkReplacesReferencesAsTheQueue(t *testing.T) {
	ctx := context.Background()
	s := &DirSink{Dir: t.TempDir()}
	exp := time.Now().Add(time.Hour)
	ref := task.Artifact{Name: "public/logs/live.log", Kind: task.ArtifactReference, URL: "http://127.0.0.1:1/log", Expires: exp}
	require.NoError(t, s.Publish(ctx, ref))
	require.NoError(t, s.Publish(ctx, ref), "a reference again")
	require.NoError(t, s.Publish(ctx, task.Artifact{Name: "public/logs/live.log", Kind: task.ArtifactLink, LinkTo: "public/logs/live_backing.log", Expires: exp}))
	got := s.Artifacts()
	require.Len(t, got, 1, "published once")
	assert.Equal(t, "link", got[0].StorageType)
	assert.Equal(t, "public/logs/live_backing.log", got[0].LinkTo)
	assert.Empty(t, got[0].URL)

	err := s.Publish(ctx, task.Artifact{Name: "public/logs/live.log", Kind: task.ArtifactReference, URL: "http://x/", Expires: exp})
	assert.ErrorContains(t, err, "published twice", "a link is final")
	require.NoError(t, s.Publish(ctx, task.Artifact{Name: "public/e", Kind: task.ArtifactError, Reason: "file-missing-on-worker", Message: "m", Expires: exp}))
	assert.ErrorContains(t, s.Publish(ctx, task.Artifact{Name: "public/e", Kind: task.ArtifactLink, LinkTo: "x", Expires: exp}), "published twice")
}
