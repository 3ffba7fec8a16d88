package taskcluster

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

var _ task.Queue = RunQueue{}

func TestRunQueue(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/index/v1/task/{ns}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("ns") {
		case "project.app.latest":
			_, _ = io.WriteString(w, `{"namespace": "project.app.latest", "taskId": "`+taskID+`"}`)
		case "project.empty":
			_, _ = io.WriteString(w, `{}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"code": "ResourceNotFound", "message": "no such namespace"}`)
		}
	})
	mux.HandleFunc("GET /api/queue/v1/task/{taskId}/status", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("taskId") == taskID {
			_, _ = io.WriteString(w, `{"status": `+string(statusJSON("completed", "completed"))+`}`)
			return
		}
		_, _ = io.WriteString(w, `{"status": {"taskId": "x", "runs": []}}`)
	})
	mux.HandleFunc("GET /api/queue/v1/task/{taskId}/runs/0/artifacts/{name...}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://"+r.Host+"/content")
		w.WriteHeader(http.StatusSeeOther)
	})
	mux.HandleFunc("GET /content", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "bytes") })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	rq := RunQueue{Client: &Client{RootURL: srv.URL, MaxElapsedTime: -1}}
	ctx := context.Background()

	id, err := rq.FindTask(ctx, "project.app.latest")
	if err != nil || id != taskID {
		t.Fatalf("FindTask: %q, %v", id, err)
	}
	if _, err := rq.FindTask(ctx, "project.missing"); tcwire.StatusCode(err) != http.StatusNotFound {
		t.Errorf("FindTask of a missing namespace: %v", err)
	}
	if _, err := rq.FindTask(ctx, "project.empty"); !errors.Is(err, tcwire.ErrNotFound) {
		t.Errorf("FindTask answered no taskId: %v", err)
	}

	body, err := rq.OpenLatestArtifact(ctx, taskID, "public/image.tar")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	_ = body.Close()
	if string(b) != "bytes" {
		t.Errorf("artifact content %q", b)
	}
	if _, err := rq.OpenLatestArtifact(ctx, "norunsnorunsnorunsnoru", "public/x"); !errors.Is(err, tcwire.ErrNotFound) {
		t.Errorf("a task without runs: %v", err)
	}
}
