package taskcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Queue is the Queue service client (references/queue/v1/api.json).
type Queue struct{ c *Client }

// Queue returns the Queue service client using c.
func (c *Client) Queue() *Queue { return &Queue{c: c} }

// Client returns the underlying client.
func (q *Queue) Client() *Client { return q.c }

// RunInfo is one run in a task status (task-status.json#/properties/runs).
type RunInfo struct {
	RunID          int       `json:"runId"`
	State          string    `json:"state"`
	ReasonCreated  string    `json:"reasonCreated"`
	ReasonResolved string    `json:"reasonResolved,omitempty"`
	WorkerGroup    string    `json:"workerGroup,omitempty"`
	WorkerID       string    `json:"workerId,omitempty"`
	TakenUntil     time.Time `json:"takenUntil,omitzero"`
	Scheduled      time.Time `json:"scheduled"`
	Started        time.Time `json:"started,omitzero"`
	Resolved       time.Time `json:"resolved,omitzero"`
}

// TaskStatus is task-status.json.
type TaskStatus struct {
	TaskID        string    `json:"taskId"`
	ProvisionerID string    `json:"provisionerId"`
	WorkerType    string    `json:"workerType"`
	TaskQueueID   string    `json:"taskQueueId"`
	SchedulerID   string    `json:"schedulerId"`
	ProjectID     string    `json:"projectId"`
	TaskGroupID   string    `json:"taskGroupId"`
	Priority      string    `json:"priority,omitempty"`
	Deadline      time.Time `json:"deadline"`
	Expires       time.Time `json:"expires"`
	RetriesLeft   int       `json:"retriesLeft"`
	State         string    `json:"state"`
	Runs          []RunInfo `json:"runs"`
}

// TaskStatusResponse is task-status-response.json.
type TaskStatusResponse struct {
	Status TaskStatus `json:"status"`
}

// ClaimWorkRequest is claim-work-request.json. Tasks is 1 to 32.
type ClaimWorkRequest struct {
	WorkerGroup string `json:"workerGroup"`
	WorkerID    string `json:"workerId"`
	Tasks       int    `json:"tasks"`
}

// TaskClaim is one claimed run (claim-work-response.json#/properties/tasks).
// Credentials are the run's task credentials (temporary, expiring around
// TakenUntil).
type TaskClaim struct {
	Status      TaskStatus            `json:"status"`
	RunID       int                   `json:"runId"`
	WorkerGroup string                `json:"workerGroup"`
	WorkerID    string                `json:"workerId"`
	TakenUntil  time.Time             `json:"takenUntil"`
	Task        tcwire.TaskDefinition `json:"task"`
	Credentials Credentials           `json:"credentials"`
}

// ClaimWorkResponse is claim-work-response.json; Tasks may be empty when the
// long poll ends without work.
type ClaimWorkResponse struct {
	Tasks []TaskClaim `json:"tasks"`
}

// TaskReclaimResponse is task-reclaim-response.json: the new takenUntil and
// fresh task credentials.
type TaskReclaimResponse struct {
	Status      TaskStatus  `json:"status"`
	RunID       int         `json:"runId"`
	WorkerGroup string      `json:"workerGroup"`
	WorkerID    string      `json:"workerId"`
	TakenUntil  time.Time   `json:"takenUntil"`
	Credentials Credentials `json:"credentials"`
}

// TaskExceptionRequest is task-exception-request.json.
type TaskExceptionRequest struct {
	Reason string `json:"reason"`
}

// Task returns a task definition (queue.task).
func (q *Queue) Task(ctx context.Context, taskID string) (*tcwire.TaskDefinition, error) {
	var out tcwire.TaskDefinition
	return &out, q.c.Call(ctx, "queue", "queue.task", http.MethodGet, Route("/task/<taskId>", taskID), nil, nil, &out)
}

// Status returns a task's status (queue.status).
func (q *Queue) Status(ctx context.Context, taskID string) (*TaskStatusResponse, error) {
	var out TaskStatusResponse
	return &out, q.c.Call(ctx, "queue", "queue.status", http.MethodGet, Route("/task/<taskId>/status", taskID), nil, nil, &out)
}

// CreateTask defines a task (queue.createTask); members task leaves empty
// get the Queue's defaults (see tcwire.TaskDefinition). Repeating the
// identical definition is idempotent, a different one answers 409.
func (q *Queue) CreateTask(ctx context.Context, taskID string, task *tcwire.TaskDefinition) (*TaskStatusResponse, error) {
	var out TaskStatusResponse
	return &out, q.c.Call(ctx, "queue", "queue.createTask", http.MethodPut, Route("/task/<taskId>", taskID), nil, task, &out)
}

// ClaimWork long-polls for up to req.Tasks runs from taskQueueID
// ("<provisionerId>/<workerType>") (queue.claimWork). The Queue answers
// within about 20 seconds, possibly with no tasks.
func (q *Queue) ClaimWork(ctx context.Context, taskQueueID string, req *ClaimWorkRequest) (*ClaimWorkResponse, error) {
	var out ClaimWorkResponse
	return &out, q.c.Call(ctx, "queue", "queue.claimWork", http.MethodPost, Route("/claim-work/<taskQueueId>", taskQueueID), nil, req, &out)
}

// ReclaimTask extends a run's claim (queue.reclaimTask). A 409 (errors.Is
// ErrConflict) means the run is no longer this worker's: stop the task and
// report nothing.
func (q *Queue) ReclaimTask(ctx context.Context, taskID string, runID int) (*TaskReclaimResponse, error) {
	var out TaskReclaimResponse
	return &out, q.c.Call(ctx, "queue", "queue.reclaimTask", http.MethodPost, runRoute("/task/<taskId>/runs/<runId>/reclaim", taskID, runID), nil, nil, &out)
}

// ReportCompleted resolves a run as completed (queue.reportCompleted).
func (q *Queue) ReportCompleted(ctx context.Context, taskID string, runID int) (*TaskStatusResponse, error) {
	var out TaskStatusResponse
	return &out, q.c.Call(ctx, "queue", "queue.reportCompleted", http.MethodPost, runRoute("/task/<taskId>/runs/<runId>/completed", taskID, runID), nil, nil, &out)
}

// ReportFailed resolves a run as failed (queue.reportFailed).
func (q *Queue) ReportFailed(ctx context.Context, taskID string, runID int) (*TaskStatusResponse, error) {
	var out TaskStatusResponse
	return &out, q.c.Call(ctx, "queue", "queue.reportFailed", http.MethodPost, runRoute("/task/<taskId>/runs/<runId>/failed", taskID, runID), nil, nil, &out)
}

// ReportException resolves a run as exception with one of the tcwire.Reason*
// worker reasons (queue.reportException).
func (q *Queue) ReportException(ctx context.Context, taskID string, runID int, reason string) (*TaskStatusResponse, error) {
	var out TaskStatusResponse
	return &out, q.c.Call(ctx, "queue", "queue.reportException", http.MethodPost, runRoute("/task/<taskId>/runs/<runId>/exception", taskID, runID), nil, &TaskExceptionRequest{Reason: reason}, &out)
}

// Artifact storage types (post-artifact-request.json).
const (
	StorageS3        = "s3"
	StorageObject    = "object"
	StorageReference = "reference"
	StorageLink      = "link"
	StorageError     = "error"
)

// Error artifact reasons (post-artifact-request.json, error artifacts).
const (
	ErrorFileMissingOnWorker     = "file-missing-on-worker"
	ErrorInvalidResourceOnWorker = "invalid-resource-on-worker"
	ErrorTooLargeFileOnWorker    = "too-large-file-on-worker"
	ErrorFileNotReadableOnWorker = "file-not-readable-on-worker"
)

// PostArtifactRequest is post-artifact-request.json, a union over
// StorageType. It marshals only the members its storage type allows; build
// it with S3Artifact, ObjectArtifact, ReferenceArtifact, LinkArtifact or
// ErrorArtifact.
type PostArtifactRequest struct {
	StorageType string
	Expires     time.Time
	// ContentType is required for s3, object and reference; optional for
	// link; not sent for error.
	ContentType string
	// ContentLength is optional for s3 and object; nil leaves it out.
	ContentLength *int64
	// URL is the target of a reference artifact.
	URL string
	// Artifact is the name of the artifact a link points to.
	Artifact string
	// Reason and Message describe an error artifact.
	Reason, Message string
}

// S3Artifact requests an s3 artifact: the answer carries a putUrl.
// length < 0 leaves contentLength out.
func S3Artifact(contentType string, length int64, expires time.Time) *PostArtifactRequest {
	return &PostArtifactRequest{StorageType: StorageS3, ContentType: contentType, ContentLength: optLength(length), Expires: expires}
}

// ObjectArtifact requests an object artifact: the answer names an object
// and gives credentials to upload it with the Object service.
func ObjectArtifact(contentType string, length int64, expires time.Time) *PostArtifactRequest {
	return &PostArtifactRequest{StorageType: StorageObject, ContentType: contentType, ContentLength: optLength(length), Expires: expires}
}

// ReferenceArtifact requests a reference (redirect) artifact to url.
func ReferenceArtifact(url, contentType string, expires time.Time) *PostArtifactRequest {
	return &PostArtifactRequest{StorageType: StorageReference, URL: url, ContentType: contentType, Expires: expires}
}

// LinkArtifact requests a link to another artifact of the same run.
func LinkArtifact(target, contentType string, expires time.Time) *PostArtifactRequest {
	return &PostArtifactRequest{StorageType: StorageLink, Artifact: target, ContentType: contentType, Expires: expires}
}

// ErrorArtifact requests an error artifact (getArtifact answers 424 with
// the message).
func ErrorArtifact(reason, message string, expires time.Time) *PostArtifactRequest {
	return &PostArtifactRequest{StorageType: StorageError, Reason: reason, Message: message, Expires: expires}
}

// FormatTime renders t as Taskcluster's clients do (tcwire.FormatTime),
// e.g. "2030-01-01T00:00:00.000Z".
func FormatTime(t time.Time) string { return tcwire.FormatTime(t) }

func formatOptTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return FormatTime(t)
}

func optLength(n int64) *int64 {
	if n < 0 {
		return nil
	}
	return &n
}

// MarshalJSON emits the members allowed for the storage type.
func (r PostArtifactRequest) MarshalJSON() ([]byte, error) {
	m := map[string]any{"storageType": r.StorageType, "expires": FormatTime(r.Expires)}
	switch r.StorageType {
	case StorageS3, StorageObject:
		m["contentType"] = r.ContentType
		if r.ContentLength != nil {
			m["contentLength"] = *r.ContentLength
		}
	case StorageReference:
		m["contentType"] = r.ContentType
		m["url"] = r.URL
	case StorageLink:
		m["artifact"] = r.Artifact
		if r.ContentType != "" {
			m["contentType"] = r.ContentType
		}
	case StorageError:
		m["reason"] = r.Reason
		m["message"] = r.Message
	default:
		return nil, fmt.Errorf("artifact storage type %q is not one of s3, object, reference, link, error", r.StorageType)
	}
	return json.Marshal(m)
}

// PostArtifactResponse is post-artifact-response.json, a union over
// StorageType: s3 answers carry PutURL (and ContentType, Expires); object
// answers carry Name, ProjectID, UploadID, Credentials (for the Object
// service) and Expires; reference, link and error answers carry only the
// storage type.
type PostArtifactResponse struct {
	StorageType string      `json:"storageType"`
	PutURL      string      `json:"putUrl,omitempty"`
	ContentType string      `json:"contentType,omitempty"`
	Expires     time.Time   `json:"expires,omitzero"`
	Name        string      `json:"name,omitempty"`
	ProjectID   string      `json:"projectId,omitempty"`
	UploadID    string      `json:"uploadId,omitempty"`
	Credentials Credentials `json:"credentials,omitzero"`
}

// FinishArtifactRequest is finish-artifact-request.json.
type FinishArtifactRequest struct {
	UploadID string `json:"uploadId"`
}

// CreateArtifact creates (or idempotently re-creates) an artifact of a run
// (queue.createArtifact). name may contain "/" and any printable
// characters; it is escaped as one path segment.
func (q *Queue) CreateArtifact(ctx context.Context, taskID string, runID int, name string, req *PostArtifactRequest) (*PostArtifactResponse, error) {
	var out PostArtifactResponse
	return &out, q.c.Call(ctx, "queue", "queue.createArtifact", http.MethodPost, artifactRoute(taskID, runID, name), nil, req, &out)
}

// FinishArtifact marks an object artifact's upload as done
// (queue.finishArtifact).
func (q *Queue) FinishArtifact(ctx context.Context, taskID string, runID int, name, uploadID string) error {
	return q.c.Call(ctx, "queue", "queue.finishArtifact", http.MethodPut, artifactRoute(taskID, runID, name), nil, &FinishArtifactRequest{UploadID: uploadID}, nil)
}

// Artifact is artifact-response.json, one entry of listArtifacts.
type Artifact struct {
	StorageType   string    `json:"storageType"`
	Name          string    `json:"name"`
	Expires       time.Time `json:"expires"`
	ContentType   string    `json:"contentType"`
	ContentLength *int64    `json:"contentLength,omitempty"`
}

// ListArtifactsResponse is list-artifacts-response.json.
type ListArtifactsResponse struct {
	Artifacts         []Artifact `json:"artifacts"`
	ContinuationToken string     `json:"continuationToken,omitempty"`
}

// ListArtifacts lists one page of a run's artifacts (queue.listArtifacts);
// pass the previous page's ContinuationToken for the next one. limit 0
// leaves the page size to the Queue.
func (q *Queue) ListArtifacts(ctx context.Context, taskID string, runID int, continuationToken string, limit int) (*ListArtifactsResponse, error) {
	query := url.Values{}
	if continuationToken != "" {
		query.Set("continuationToken", continuationToken)
	}
	if limit > 0 {
		query.Set("limit", strconv.Itoa(limit))
	}
	var out ListArtifactsResponse
	return &out, q.c.Call(ctx, "queue", "queue.listArtifacts", http.MethodGet, runRoute("/task/<taskId>/runs/<runId>/artifacts", taskID, runID), query, nil, &out)
}

// GetArtifactResponse is get-artifact-response.json: where the artifact's
// content is.
type GetArtifactResponse struct {
	StorageType string `json:"storageType"`
	URL         string `json:"url"`
}

// GetArtifact asks where an artifact's content is (queue.getArtifact)
// without following the redirect. The Queue answers 303 with a JSON body
// {storageType, url} and a Location header; when the body is not that JSON
// the Location header is used. An error artifact answers 424: an *APIError
// whose Message is the artifact's message.
func (q *Queue) GetArtifact(ctx context.Context, taskID string, runID int, name string) (*GetArtifactResponse, error) {
	var out GetArtifactResponse
	resp, err := q.c.do(ctx, call{
		service: "queue", name: "queue.getArtifact", method: http.MethodGet,
		path: artifactRoute(taskID, runID, name), out: &out, noRedirect: true, lenient: true,
	})
	if err != nil {
		return nil, err
	}
	if out.URL == "" {
		loc, err := resp.Location()
		if err != nil {
			return nil, fmt.Errorf("queue.getArtifact %s/%d/%s: answer has neither url nor Location: %w", taskID, runID, name, err)
		}
		out.URL = loc.String()
	}
	return &out, nil
}

// ArtifactURL returns the getArtifact URL of an artifact, signed with a
// bewit valid for ttl when the client has credentials (private artifacts);
// it makes no request.
func (q *Queue) ArtifactURL(taskID string, runID int, name string, ttl time.Duration) (*url.URL, error) {
	u, err := q.c.ServiceURL("queue", artifactRoute(taskID, runID, name))
	if err != nil {
		return nil, err
	}
	return q.c.SignedURL(u, ttl)
}

func runRoute(template, taskID string, runID int) string {
	return Route(template, taskID, strconv.Itoa(runID))
}

func artifactRoute(taskID string, runID int, name string) string {
	return Route("/task/<taskId>/runs/<runId>/artifacts/<name>", taskID, strconv.Itoa(runID), name)
}

// DownloadArtifact resolves an artifact with GetArtifact and GETs its
// content, returning the response: the caller reads and closes its Body.
// The content request is Hawk-signed when the URL is below the client's
// rootUrl (a local Queue serving its own artifacts) and unsigned otherwise
// (signed storage URLs). Network errors and 5xx answers are retried until
// the response headers arrive; the body itself is not retried.
func (q *Queue) DownloadArtifact(ctx context.Context, taskID string, runID int, name string) (*http.Response, error) {
	where, err := q.GetArtifact(ctx, taskID, runID, name)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(where.URL)
	if err != nil {
		return nil, fmt.Errorf("queue.getArtifact %s/%d/%s: bad url %q: %w", taskID, runID, name, where.URL, err)
	}
	sign := q.c.RootURL != "" && strings.HasPrefix(u.String(), strings.TrimRight(q.c.RootURL, "/")+"/")
	hc := q.c.httpClient()
	attempt := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, backoff.Permanent(err)
		}
		if sign {
			if err := q.c.Sign(req); err != nil {
				return nil, backoff.Permanent(fmt.Errorf("signing artifact download: %w", err))
			}
		} else if q.c.UserAgent != "" {
			req.Header.Set("User-Agent", q.c.UserAgent)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("downloading artifact %q: GET %s: %w", name, redact(u), err)
		}
		if resp.StatusCode >= 300 {
			defer resp.Body.Close()
			apiErr := newAPIError(http.MethodGet, u, resp)
			if resp.StatusCode >= 500 {
				return nil, apiErr
			}
			return nil, backoff.Permanent(apiErr)
		}
		return resp, nil
	}
	return q.c.retry(ctx, "download artifact "+name, attempt)
}
