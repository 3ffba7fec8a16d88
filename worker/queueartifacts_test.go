package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
)

// fakeDeployment answers the Index and Queue calls QueueArtifacts makes.
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

// TestQueueArtifacts reads an artifact found through an index namespace
// (the latest run's), and maps what does not exist to engines.ErrNotFound,
// which engines turn into malformed-payload.
func TestQueueArtifacts(t *testing.T) {
	const producer = "QueueImageTask"
	content := []byte("image archive")
	srv := fakeDeployment(t, producer, "public/image.tar", content)
	f := &QueueArtifacts{RootURL: srv.URL}
	ctx := context.Background()
	tc := &task.Context{TaskID: "consumer"}

	id, err := f.FindTask(ctx, tc, "proj.images.latest")
	if err != nil || id != producer {
		t.Fatalf("FindTask = %q, %v; want %q", id, err, producer)
	}
	rc, err := f.OpenArtifact(ctx, tc, id, "public/image.tar")
	if err != nil {
		t.Fatalf("OpenArtifact: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != string(content) {
		t.Fatalf("artifact = %q, %v; want %q", got, err, content)
	}

	if _, err := f.FindTask(ctx, tc, "proj.other"); !errors.Is(err, engines.ErrNotFound) {
		t.Errorf("FindTask of an unknown namespace: %v, want ErrNotFound", err)
	}
	for _, c := range []struct{ taskID, name string }{
		{producer, "public/nope.tar"},
		{"UnknownTaskId", "public/image.tar"},
	} {
		if _, err := f.OpenArtifact(ctx, tc, c.taskID, c.name); !errors.Is(err, engines.ErrNotFound) {
			t.Errorf("OpenArtifact(%s, %s): %v, want ErrNotFound", c.taskID, c.name, err)
		}
	}
}

func TestQueueArtifactsWithoutRootURL(t *testing.T) {
	_, err := (&QueueArtifacts{}).FindTask(context.Background(), &task.Context{}, "proj.images.latest")
	if err == nil || errors.Is(err, engines.ErrNotFound) {
		t.Errorf("FindTask without a root URL: %v, want a transient error", err)
	}
}
