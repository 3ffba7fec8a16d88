package localqueue_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
)

// A worker's conversation with an in-process Queue: create a task, claim
// it over HTTP with Hawk, resolve it, read its status.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "localqueue-example")
	defer func() { _ = os.RemoveAll(dir) }()
	worker := localqueue.WorkerClient("worker", "examples/local")
	s, err := localqueue.New(localqueue.Options{
		Dir:     dir,
		Clients: []localqueue.Client{worker},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer func() { _ = s.Close() }()
	srv := httptest.NewServer(s.Handler()) // srv.URL is the workers' rootUrl
	defer srv.Close()

	ctx := context.Background()
	taskID := localqueue.NewTaskID()
	now := time.Now()
	if _, err := s.CreateTask(ctx, taskID, map[string]any{
		"taskQueueId": "examples/local",
		"created":     now,
		"deadline":    now.Add(time.Hour),
		"payload":     map[string]any{"command": [][]string{{"true"}}},
		"metadata":    map[string]any{"name": "example", "description": "d", "owner": "me@example.com", "source": "https://example.com"},
	}); err != nil {
		panic(err)
	}

	q := (&taskcluster.Client{RootURL: srv.URL, Credentials: taskcluster.StaticCredentials(
		taskcluster.Credentials{ClientID: worker.ClientID, AccessToken: worker.AccessToken})}).Queue()
	claims, err := q.ClaimWork(ctx, "examples/local", &taskcluster.ClaimWorkRequest{WorkerGroup: "local", WorkerID: "w1", Tasks: 1})
	if err != nil {
		panic(err)
	}
	claim := claims.Tasks[0]
	// Calls about the run use the run's temporary credentials.
	run := (&taskcluster.Client{RootURL: srv.URL, Credentials: taskcluster.StaticCredentials(claim.Credentials)}).Queue()
	if _, err := run.ReportCompleted(ctx, taskID, claim.RunID); err != nil {
		panic(err)
	}
	st, _ := s.Status(taskID)
	fmt.Println(st.State, st.Runs[0].ReasonResolved, st.Runs[0].WorkerID)
	// Output: completed completed w1
}
