package engines

import (
	"context"
	"io"

	"github.com/workergen/workergen/task"
)

// ArtifactFetcher reads what other tasks published, for engines whose
// payload names another task's artifact (the container engine's
// indexed-image and task-image). The worker passes one in
// Options.Artifacts, backed by the deployment's Index and Queue; engines
// never build a Taskcluster client of their own. Calls are signed with the
// run's credentials (tc.Credentials), so the run's scopes decide what it may
// read, and go to tc.Worker.RootURL. Safe for concurrent use.
type ArtifactFetcher interface {
	// FindTask returns the taskId the Index namespace points at (Index
	// findTask). It returns an error wrapping ErrNotFound when the
	// namespace holds no task or the run's scopes do not allow reading
	// it; other errors are transient.
	FindTask(ctx context.Context, tc *task.Context, namespace string) (taskID string, err error)

	// OpenArtifact streams artifact name of the latest run of taskID
	// (Queue task status, then getArtifact, following the redirect to the
	// content); the caller closes it. It returns an error wrapping
	// ErrNotFound when the task, its runs or the artifact do not exist,
	// when it is an error artifact, or when the run's scopes do not allow
	// reading it; other errors are transient.
	OpenArtifact(ctx context.Context, tc *task.Context, taskID, name string) (io.ReadCloser, error)
}
