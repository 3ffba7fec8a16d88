package localqueue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/localqueue"
	"github.com/workergen/workergen/taskcluster/tcwire"
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
	if _, err := s.CreateTask(ctx, taskID, &localqueue.TaskDefinition{
		TaskQueueID: "examples/local",
		Created:     now,
		Deadline:    now.Add(time.Hour),
		Payload:     json.RawMessage(`{"command": [["true"]]}`),
		Metadata:    tcwire.TaskMetadata{Name: "example", Description: "d", Owner: "me@example.com", Source: "https://example.com"},
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
