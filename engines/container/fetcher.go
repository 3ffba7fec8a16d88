package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/workergen/workergen/task"
	"github.com/workergen/workergen/taskcluster"
)

// QueueFetcher is the ImageFetcher of a Taskcluster deployment: Index
// findTask (GET <rootUrl>/api/index/v1/task/<namespace>) for indexed
// images, and the Queue's getArtifact of the task's latest run (Queue
// status, then getArtifact and the download it redirects to) for the
// image artifact, each signed with the run's temporary credentials. A
// namespace, task or artifact that does not exist, an error artifact (424)
// and a refusal for lack of scopes (403) are ErrImageNotFound; other
// failures are transient.
type QueueFetcher struct {
	// RootURL overrides the run's tc.Worker.RootURL when set.
	RootURL string
	// HTTPClient sends the requests; nil means the taskcluster package's
	// shared client.
	HTTPClient *http.Client
}

var _ ImageFetcher = (*QueueFetcher)(nil)

func (f *QueueFetcher) client(tc *task.Context) (*taskcluster.Client, error) {
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

// imageErr maps an API error to ErrImageNotFound where the task is at fault.
func imageErr(what string, err error) error {
	switch code := taskcluster.StatusCode(err); {
	case errors.Is(err, taskcluster.ErrNotFound), code == http.StatusFailedDependency:
		return fmt.Errorf("%s: %w: %v", what, ErrImageNotFound, err)
	case errors.Is(err, taskcluster.ErrForbidden):
		return fmt.Errorf("%s: %w (the task's scopes do not allow reading it): %v", what, ErrImageNotFound, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// FindTask implements ImageFetcher with Index findTask.
func (f *QueueFetcher) FindTask(ctx context.Context, tc *task.Context, namespace string) (string, error) {
	c, err := f.client(tc)
	if err != nil {
		return "", err
	}
	var out struct {
		TaskID string `json:"taskId"`
	}
	if err := c.Call(ctx, "index", "index.findTask", http.MethodGet, taskcluster.Route("/task/<indexPath>", namespace), nil, nil, &out); err != nil {
		return "", imageErr("index namespace "+namespace, err)
	}
	if out.TaskID == "" {
		return "", fmt.Errorf("index namespace %s: %w: answer names no task", namespace, ErrImageNotFound)
	}
	return out.TaskID, nil
}

// OpenArtifact implements ImageFetcher: artifact name of taskID's latest
// run.
func (f *QueueFetcher) OpenArtifact(ctx context.Context, tc *task.Context, taskID, name string) (io.ReadCloser, error) {
	c, err := f.client(tc)
	if err != nil {
		return nil, err
	}
	q := c.Queue()
	st, err := q.Status(ctx, taskID)
	if err != nil {
		return nil, imageErr("task "+taskID, err)
	}
	runs := st.Status.Runs
	if len(runs) == 0 {
		return nil, fmt.Errorf("task %s: %w: it has no runs", taskID, ErrImageNotFound)
	}
	resp, err := q.DownloadArtifact(ctx, taskID, runs[len(runs)-1].RunID, name)
	if err != nil {
		return nil, imageErr(fmt.Sprintf("artifact %s of task %s", name, taskID), err)
	}
	return resp.Body, nil
}
