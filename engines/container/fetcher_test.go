package container

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/workergen/workergen/task"
)

// fakeDeployment answers the Index and Queue calls QueueFetcher makes.
func fakeDeployment(t *testing.T, taskID, name string, content []byte) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/index/v1/task/{ns}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ns") != "proj.images.latest" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"code": "ResourceNotFound", "message": "no such namespace"})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"namespace": "proj.images.latest", "taskId": taskID})
	})
	mux.HandleFunc("GET /api/queue/v1/task/{id}/status", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != taskID {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"code": "ResourceNotFound", "message": "no such task"})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"status": map[string]any{"taskId": taskID, "state": "completed", "runs": []map[string]any{{"runId": 0, "state": "exception"}, {"runId": 1, "state": "completed"}}}})
	})
	mux.HandleFunc("GET /api/queue/v1/task/{id}/runs/{run}/artifacts/{name...}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("run") != "1" || r.PathValue("name") != name {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"code": "ResourceNotFound", "message": "no such artifact"})
			return
		}
		u := "http://" + r.Host + "/blob/image"
		w.Header().Set("Location", u)
		w.WriteHeader(http.StatusSeeOther)
		json.NewEncoder(w).Encode(map[string]string{"storageType": "s3", "url": u})
	})
	mux.HandleFunc("GET /blob/image", func(w http.ResponseWriter, r *http.Request) { w.Write(content) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestQueueFetcher(t *testing.T) {
	e := newTestEngine(t, nil)
	image := savedImage(t, e)
	producer := uniqueID("QueueImageTask")
	srv := fakeDeployment(t, producer, "public/image.tar", image)
	e.images.fetcher = &QueueFetcher{RootURL: srv.URL}
	t.Cleanup(func() {
		e.cli.ImageRemove(context.Background(), taskImageTag(producer, "public/image.tar"), client.ImageRemoveOptions{})
	})

	p := payload(t, "sh", "-c", "echo image-from-queue")
	p["image"] = map[string]string{"type": "indexed-image", "namespace": "proj.images.latest", "path": "public/image.tar"}
	r := newRun(t, e, p)
	if res := runTask(t, e, r, nil); !res.Success() || !strings.Contains(r.log.String(), "image-from-queue") {
		t.Fatalf("indexed image through the Queue failed; log:\n%s", r.log.String())
	}
	for _, img := range []map[string]string{
		{"type": "indexed-image", "namespace": "proj.other", "path": "public/image.tar"},
		{"type": "task-image", "taskId": producer, "path": "public/nope.tar"},
		{"type": "task-image", "taskId": "UnknownTaskId", "path": "public/image.tar"},
	} {
		p["image"] = img
		_, err := e.NewSandboxBuilder(testCtx(t), newRun(t, e, p).tc)
		wantException(t, err, task.ReasonMalformedPayload, "payload.image")
	}
}
