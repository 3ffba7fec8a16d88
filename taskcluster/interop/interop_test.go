package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// TestInteropLocalQueue drives one task's life through the client against
// the embedded Queue over real HTTP with Hawk: createTask, claimWork,
// reclaimTask with credentials swapped in place, s3 and object uploads
// (including an empty file and a name with a space and "+"), link and
// error artifacts, listArtifacts, downloads, reportCompleted, and the 409
// of a reclaim after resolution.
func TestInteropLocalQueue(t *testing.T) {
	srv, err := localqueue.New(localqueue.Options{
		Dir:            t.TempDir(),
		Clients:        []localqueue.Client{{ClientID: "worker", AccessToken: "worker-token", Scopes: []string{"*"}}},
		LongPoll:       5 * time.Second,
		ExpireInterval: -1,
		NoSync:         true,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	worker := &taskcluster.Client{
		RootURL:         hs.URL,
		HTTPClient:      hs.Client(),
		Credentials:     taskcluster.StaticCredentials(taskcluster.Credentials{ClientID: "worker", AccessToken: "worker-token"}),
		InitialInterval: time.Millisecond,
	}
	q := worker.Queue()

	taskID := localqueue.NewTaskID()
	now := time.Now()
	_, err = q.CreateTask(ctx, taskID, &tcwire.TaskDefinition{
		TaskQueueID: "proj/linux",
		Created:     now,
		Deadline:    now.Add(time.Hour),
		Expires:     now.Add(48 * time.Hour),
		Payload:     json.RawMessage(`{"command":[["true"]],"maxRunTime":60}`),
		Metadata:    tcwire.TaskMetadata{Name: "interop", Description: "d", Owner: "me@example.com", Source: "https://example.com/interop"},
	})
	require.NoError(t, err)

	claimed, err := q.ClaimWork(ctx, "proj/linux", &taskcluster.ClaimWorkRequest{WorkerGroup: "wg", WorkerID: "w1", Tasks: 4})
	require.NoError(t, err)
	require.Len(t, claimed.Tasks, 1)
	claim := claimed.Tasks[0]
	assert.Equal(t, taskID, claim.Status.TaskID)
	assert.JSONEq(t, `{"command":[["true"]],"maxRunTime":60}`, string(claim.Task.Payload))

	holder := taskcluster.NewCredentialsHolder(claim.Credentials)
	tc := *worker
	tc.Credentials = holder.Get
	tq := tc.Queue()

	rec, err := tq.ReclaimTask(ctx, taskID, claim.RunID)
	require.NoError(t, err)
	assert.False(t, rec.TakenUntil.Before(claim.TakenUntil))
	holder.Set(rec.Credentials)

	dir := t.TempDir()
	write := func(name string, content []byte) taskcluster.Opener {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, content, 0o600))
		return func() (io.ReadCloser, error) { return os.Open(p) }
	}
	expires := now.Add(24 * time.Hour)
	require.NoError(t, tq.UploadArtifact(ctx, taskID, claim.RunID, "public/a b+c.txt", &taskcluster.ArtifactUpload{
		StorageType: taskcluster.StorageS3, ContentType: "text/plain", ContentLength: 0, Expires: expires, Open: write("empty", nil),
	}))
	objContent := bytes.Repeat([]byte("object bytes\n"), 5000)
	require.NoError(t, tq.UploadArtifact(ctx, taskID, claim.RunID, "public/dir/object+1.bin", &taskcluster.ArtifactUpload{
		StorageType: taskcluster.StorageObject, ContentType: "application/octet-stream", ContentLength: int64(len(objContent)), Expires: expires, Open: write("obj", objContent),
	}))
	s3Content := []byte("s3 content with a longer body")
	require.NoError(t, tq.UploadArtifact(ctx, taskID, claim.RunID, "public/logs/live_backing.log", &taskcluster.ArtifactUpload{
		StorageType: taskcluster.StorageS3, ContentType: "text/plain; charset=utf-8", ContentLength: int64(len(s3Content)), Expires: expires, Open: write("s3", s3Content),
	}))
	_, err = tq.CreateArtifact(ctx, taskID, claim.RunID, "public/logs/live.log", taskcluster.LinkArtifact("public/logs/live_backing.log", "text/plain; charset=utf-8", expires))
	require.NoError(t, err)
	_, err = tq.CreateArtifact(ctx, taskID, claim.RunID, "public/missing", taskcluster.ErrorArtifact(taskcluster.ErrorFileMissingOnWorker, "no such file", expires))
	require.NoError(t, err)

	list, err := q.ListArtifacts(ctx, taskID, claim.RunID, "", 0)
	require.NoError(t, err)
	names := map[string]string{}
	for _, a := range list.Artifacts {
		names[a.Name] = a.StorageType
	}
	assert.Equal(t, map[string]string{
		"public/a b+c.txt": "s3", "public/dir/object+1.bin": "object", "public/logs/live_backing.log": "s3",
		"public/logs/live.log": "link", "public/missing": "error",
	}, names)

	for name, want := range map[string][]byte{
		"public/a b+c.txt":        {},
		"public/dir/object+1.bin": objContent,
		"public/logs/live.log":    s3Content,
	} {
		resp, err := q.DownloadArtifact(ctx, taskID, claim.RunID, name)
		require.NoError(t, err, name)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, got), "%s: got %d bytes, want %d", name, len(got), len(want))
	}
	_, err = q.GetArtifact(ctx, taskID, claim.RunID, "public/missing")
	assert.Equal(t, 424, taskcluster.StatusCode(err))

	st, err := tq.ReportCompleted(ctx, taskID, claim.RunID)
	require.NoError(t, err)
	assert.Equal(t, tcwire.StateCompleted, st.Status.State)

	_, err = tq.ReclaimTask(ctx, taskID, claim.RunID)
	assert.ErrorIs(t, err, taskcluster.ErrConflict)
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
