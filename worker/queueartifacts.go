package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/workergen/workergen/engines"
	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
)

// QueueArtifacts is the engines.ArtifactFetcher of a Taskcluster
// deployment, which NewRunner gives the engine: Index findTask (GET
// <rootUrl>/api/index/v1/task/<namespace>) for namespaces, and the Queue's
// getArtifact of the task's latest run (Queue status, then getArtifact and
// the download it redirects to) for artifacts, each signed with the run's
// temporary credentials. A namespace, task or artifact that does not exist,
// an error artifact (424) and a refusal for lack of scopes (403) wrap
// engines.ErrNotFound; other failures are transient.
type QueueArtifacts struct {
	// RootURL overrides the run's tc.Worker.RootURL when set.
	RootURL string
	// HTTPClient sends the requests; nil means the taskcluster package's
	// shared client.
	HTTPClient *http.Client
}

var _ engines.ArtifactFetcher = (*QueueArtifacts)(nil)

func (f *QueueArtifacts) client(tc *task.Context) (*taskcluster.Client, error) {
	root := f.RootURL
	if root == "" {
		root = tc.Worker.RootURL
	}
	if root == "" {
		return nil, errors.New("no Taskcluster root URL (run mode): indexed and task images need a deployment")
	}
	c := &taskcluster.Client{RootURL: root, HTTPClient: f.HTTPClient, UserAgent: "workergen/" + tc.Worker.Version}
	if tc.Credentials != nil {
		c.Credentials = func() *taskcluster.Credentials {
			cr := tc.Credentials()
			if cr == nil {
				return nil
			}
			return &taskcluster.Credentials{ClientID: cr.ClientID, AccessToken: cr.AccessToken, Certificate: cr.Certificate}
		}
	}
	return c, nil
}

// artifactErr maps an API error to engines.ErrNotFound where the task is at
// fault.
func artifactErr(what string, err error) error {
	switch code := taskcluster.StatusCode(err); {
	case errors.Is(err, taskcluster.ErrNotFound), code == http.StatusFailedDependency:
		return fmt.Errorf("%s: %w: %v", what, engines.ErrNotFound, err)
	case errors.Is(err, taskcluster.ErrForbidden):
		return fmt.Errorf("%s: %w (the task's scopes do not allow reading it): %v", what, engines.ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// FindTask implements engines.ArtifactFetcher with Index findTask.
func (f *QueueArtifacts) FindTask(ctx context.Context, tc *task.Context, namespace string) (string, error) {
	c, err := f.client(tc)
	if err != nil {
		return "", err
	}
	var out struct {
		TaskID string `json:"taskId"`
	}
	if err := c.Call(ctx, "index", "index.findTask", http.MethodGet, taskcluster.Route("/task/<indexPath>", namespace), nil, nil, &out); err != nil {
		return "", artifactErr("index namespace "+namespace, err)
	}
	if out.TaskID == "" {
		return "", fmt.Errorf("index namespace %s: %w: answer names no task", namespace, engines.ErrNotFound)
	}
	return out.TaskID, nil
}

// OpenArtifact implements engines.ArtifactFetcher: artifact name of
// taskID's latest run.
func (f *QueueArtifacts) OpenArtifact(ctx context.Context, tc *task.Context, taskID, name string) (io.ReadCloser, error) {
	c, err := f.client(tc)
	if err != nil {
		return nil, err
	}
	q := c.Queue()
	st, err := q.Status(ctx, taskID)
	if err != nil {
		return nil, artifactErr("task "+taskID, err)
	}
	runs := st.Status.Runs
	if len(runs) == 0 {
		return nil, fmt.Errorf("task %s: %w: it has no runs", taskID, engines.ErrNotFound)
	}
	resp, err := q.DownloadArtifact(ctx, taskID, runs[len(runs)-1].RunID, name)
	if err != nil {
		return nil, artifactErr(fmt.Sprintf("artifact %s of task %s", name, taskID), err)
	}
	return resp.Body, nil
}
