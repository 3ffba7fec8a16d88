package taskcluster

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// RunQueue is what a task run's components reach of the deployment (the
// task.Queue contract: Index findTask and the latest run's artifacts),
// through Client, which the worker signs with the run's current task
// credentials. Errors are the client's: a 4xx answer is an *APIError.
type RunQueue struct {
	Client *Client
}

// FindTask returns the taskId indexed under namespace (index.findTask,
// GET <rootUrl>/api/index/v1/task/<namespace>). An answer naming no task is
// an error matching tcwire.ErrNotFound.
func (r RunQueue) FindTask(ctx context.Context, namespace string) (string, error) {
	var out struct {
		TaskID string `json:"taskId"`
	}
	if err := r.Client.Call(ctx, "index", "index.findTask", http.MethodGet, Route("/task/<indexPath>", namespace), nil, nil, &out); err != nil {
		return "", err
	}
	if out.TaskID == "" {
		return "", fmt.Errorf("index.findTask %s: %w: the answer names no taskId", namespace, tcwire.ErrNotFound)
	}
	return out.TaskID, nil
}

// OpenLatestArtifact opens the content of artifact name of taskID's latest
// run: queue.status, then DownloadArtifact. A task without runs is an error
// matching tcwire.ErrNotFound. The caller closes the reader.
func (r RunQueue) OpenLatestArtifact(ctx context.Context, taskID, name string) (io.ReadCloser, error) {
	q := r.Client.Queue()
	st, err := q.Status(ctx, taskID)
	if err != nil {
		return nil, err
	}
	runs := st.Status.Runs
	if len(runs) == 0 {
		return nil, fmt.Errorf("task %s: %w: it has no runs", taskID, tcwire.ErrNotFound)
	}
	resp, err := q.DownloadArtifact(ctx, taskID, runs[len(runs)-1].RunID, name)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
