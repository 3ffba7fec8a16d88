package mounts_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/workergen/workergen/plugins"
	"github.com/workergen/workergen/plugins/plugintest"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
)

// artifactQueue starts an in-process Queue holding task id with a public
// and a private artifact (both the tar of tarB64) in its run 0.
func artifactQueue(t *testing.T) (rootURL, id string, creds *task.Credentials) {
	t.Helper()
	s, err := localqueue.New(localqueue.Options{Dir: t.TempDir(), NoSync: true})
	require.NoError(t, err)
	// The Index service's findTask, beside the Queue on the same rootUrl.
	mux := http.NewServeMux()
	mux.Handle("/", s.Handler())
	var indexed string
	mux.HandleFunc("GET /api/index/v1/task/{ns}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ns") != "project.mounts.latest" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code": "ResourceNotFound", "message": "no such namespace"}`))
			return
		}
		_, _ = w.Write([]byte(`{"namespace": "project.mounts.latest", "taskId": "` + indexed + `", "rank": 0, "data": {}, "expires": "2099-01-01T00:00:00.000Z"}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); _ = s.Close() })
	ctx := context.Background()
	id = localqueue.NewTaskID()
	indexed = id
	now := time.Now()
	_, err = s.CreateTaskJSON(ctx, id, map[string]any{"taskQueueId": "p/w", "created": now, "deadline": now.Add(time.Hour),
		"scopes":  []string{"queue:get-artifact:private/*"},
		"payload": map[string]any{}, "metadata": map[string]any{"name": "n", "description": "d", "owner": "o@example.com", "source": "https://x"}})
	require.NoError(t, err)
	claims, err := s.ClaimWork(ctx, "p/w", "g", "w", 1)
	require.NoError(t, err)
	require.Len(t, claims, 1)
	q := (&taskcluster.Client{RootURL: srv.URL, Credentials: taskcluster.StaticCredentials(claims[0].Credentials), InitialInterval: 10 * time.Millisecond}).Queue()
	data := makeTar(t, []entry{{name: "seed.txt", body: "seed"}})
	for _, name := range []string{"public/seed.tar", "private/seed.tar"} {
		require.NoError(t, q.UploadArtifact(ctx, id, 0, name, &taskcluster.ArtifactUpload{
			StorageType: taskcluster.StorageS3, ContentType: "application/x-tar", ContentLength: int64(len(data)),
			Expires: now.Add(time.Hour), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		}))
	}
	return srv.URL, id, &claims[0].Credentials
}

// runQueue is the run's Queue as the worker gives it: a client on rootURL
// signed with creds (unsigned when nil), retrying briefly.
func runQueue(rootURL string, creds *task.Credentials) task.Queue {
	c := &taskcluster.Client{RootURL: rootURL, MaxElapsedTime: 2 * time.Second, InitialInterval: 10 * time.Millisecond}
	if creds != nil {
		c.Credentials = taskcluster.StaticCredentials(*creds)
	}
	return taskcluster.RunQueue{Client: c}
}

func TestArtifactContent(t *testing.T) {
	rootURL, id, creds := artifactQueue(t)
	p := newPlugin(t)
	runWith := func(name string, _ *task.Credentials) *plugintest.Result {
		c := plugintest.Case{
			Plugins:    []plugins.Plugin{p},
			Worker:     task.WorkerInfo{RootURL: rootURL},
			Queue:      runQueue(rootURL, nil),
			Definition: task.Definition{Dependencies: []string{id}},
			Payload: map[string]any{"mounts": []any{
				map[string]any{"directory": "d", "format": "tar", "content": map[string]any{"taskId": id, "artifact": name, "sha256": sum(makeTar(t, []entry{{name: "seed.txt", body: "seed"}}))}},
			}},
		}
		return plugintest.Run(t, c)
	}
	res := runWith("public/seed.tar", nil)
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Equal(t, "seed", readFile(t, res, "d/seed.txt"))

	res = runWith("public/missing.tar", nil)
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution, res.Log)
	assert.Contains(t, res.Exception.Error(), "payload.mounts[0].content")

	// A private artifact without credentials: the Queue answers 403.
	res = runWith("private/seed.tar", nil)
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution, res.Log)

	// With the run's task credentials (which carry the task's scopes) it
	// is fetched.
	ctx := context.Background()
	tc := &task.Context{
		TaskID: localqueue.NewTaskID(), TaskDir: t.TempDir(), Log: task.NewLog(io.Discard),
		Worker:      task.WorkerInfo{RootURL: rootURL},
		Credentials: func() *task.Credentials { return creds },
		Queue:       runQueue(rootURL, creds),
		Definition:  task.Definition{Dependencies: []string{id}, Payload: []byte(`{"mounts": [{"file": "s.tar", "content": {"taskId": "` + id + `", "artifact": "private/seed.tar"}}]}`)},
	}
	tp, err := p.NewTaskPlugin(ctx, tc)
	require.NoError(t, err)
	require.NoError(t, tp.Prepare(ctx))
	require.NoError(t, tp.Dispose(ctx))
	got, err := os.ReadFile(filepath.Join(tc.TaskDir, "s.tar"))
	require.NoError(t, err)
	assert.Equal(t, makeTar(t, []entry{{name: "seed.txt", body: "seed"}}), got)
}

func TestIndexedContent(t *testing.T) {
	rootURL, _, _ := artifactQueue(t)
	p := newPlugin(t)
	res := plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{p},
		Worker:  task.WorkerInfo{RootURL: rootURL},
		Queue:   runQueue(rootURL, nil),
		Payload: map[string]any{"mounts": []any{
			map[string]any{"directory": "d", "format": "tar", "content": map[string]any{"namespace": "project.mounts.latest", "artifact": "public/seed.tar"}},
		}},
	})
	require.Equal(t, task.Completed, res.Resolution.State, res.Log)
	assert.Equal(t, "seed", readFile(t, res, "d/seed.txt"))
	assert.Contains(t, res.Log, "namespace project.mounts.latest artifact public/seed.tar")

	res = plugintest.Run(t, plugintest.Case{
		Plugins: []plugins.Plugin{p},
		Worker:  task.WorkerInfo{RootURL: rootURL},
		Queue:   runQueue(rootURL, nil),
		Payload: map[string]any{"mounts": []any{
			map[string]any{"file": "f", "content": map[string]any{"namespace": "project.mounts.missing", "artifact": "public/seed.tar"}},
		}},
	})
	require.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonMalformedPayload}, res.Resolution, res.Log)
	assert.Contains(t, res.Exception.Error(), "payload.mounts[0].content.namespace")
}

// TestNoRootURLIsResourceUnavailable: in run mode without a rootUrl an
// artifact or index mount cannot be fetched because the worker lacks a
// Queue, not because the task is wrong: resource-unavailable, as the
// container engine reports an indexed or task image there and as
// generic-worker v106 reports a Queue it cannot use (malformed-payload is
// kept for the Queue's 4xx refusals).
func TestNoRootURLIsResourceUnavailable(t *testing.T) {
	for _, content := range []map[string]any{
		{"taskId": "KTBKfEgxR5GdfIIREQIvFQ", "artifact": "public/a.txt"},
		{"namespace": "project.app.latest", "artifact": "public/a.txt"},
	} {
		res := run(t, newPlugin(t), map[string]any{"mounts": []any{map[string]any{"file": "a.txt", "content": content}}},
			task.Definition{Dependencies: []string{"KTBKfEgxR5GdfIIREQIvFQ"}})
		assert.Equal(t, task.Resolution{State: task.Exception, Reason: task.ReasonResourceUnavailable}, res.Resolution, "%v", content)
		assert.ErrorContains(t, res.Err(plugintest.StagePrepare), "no rootUrl")
	}
}
