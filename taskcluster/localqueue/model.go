package localqueue

import (
	"time"

	"github.com/workergen/workergen/taskcluster"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

// exceptionReasons are the reasons reportException accepts
// (task-exception-request.json).
var exceptionReasons = map[string]bool{
	tcwire.ReasonWorkerShutdown:      true,
	tcwire.ReasonMalformedPayload:    true,
	tcwire.ReasonResourceUnavailable: true,
	tcwire.ReasonInternalError:       true,
	tcwire.ReasonIntermittentTask:    true,
}

// priorities ranks task priorities, highest first (task.json `priority`).
var priorities = map[string]int{
	"highest":   7,
	"very-high": 6,
	"high":      5,
	"medium":    4,
	"low":       3,
	"very-low":  2,
	"lowest":    1,
}

// TaskDefinition is a task definition as the Queue stores and returns it
// (schema queue/v1/task.json), the shared wire type: the server fills in
// every default (projectId "none", retries 5, expires a year after the
// deadline, empty lists and objects), so what it answers has every member
// task.json requires.
type TaskDefinition = tcwire.TaskDefinition

// Run is one run of a task (task-status.json `runs[]`), the client's type:
// the server answers with exactly what workers parse. Times are UTC with
// millisecond precision; zero times are omitted.
type Run = taskcluster.RunInfo

// TaskStatus is the task status structure (schema
// queue/v1/task-status.json), the client's type.
type TaskStatus = taskcluster.TaskStatus

// Credentials are Taskcluster credentials as the Queue hands them out
// (task-credentials.json, object-credentials.json): the same type the
// hawk package and the taskcluster client use (tcwire.Credentials). The
// server never sets AuthorizedScopes in what it returns.
type Credentials = tcwire.Credentials

// Artifact is one artifact of a run as the server stores it, with its bytes
// for `s3` and `object` artifacts (returned by Server.Artifacts).
type Artifact struct {
	Name        string    `json:"name"`
	StorageType string    `json:"storageType"`
	ContentType string    `json:"contentType"`
	Expires     time.Time `json:"expires"`
	// Present is false for an `object` artifact until finishArtifact.
	Present bool `json:"present"`
	// URL is a `reference` artifact's target.
	URL string `json:"url,omitempty"`
	// Link is a `link` artifact's target artifact name.
	Link string `json:"link,omitempty"`
	// Reason and Message describe an `error` artifact.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Content is the stored bytes of an `s3` or `object` artifact (nil if
	// nothing was uploaded yet); filled by Server.Artifacts only.
	Content []byte `json:"-"`
	// Uploaded tells whether bytes were uploaded (Content may be empty).
	Uploaded bool `json:"-"`
	// ContentEncoding is the Content-Encoding the bytes were uploaded
	// with, if any.
	ContentEncoding string `json:"-"`
}

// taskRecord is what the database holds per task.
type taskRecord struct {
	TaskID      string         `json:"taskId"`
	Definition  TaskDefinition `json:"definition"`
	RetriesLeft int            `json:"retriesLeft"`
	Runs        []Run          `json:"runs"`
}

func (t *taskRecord) clone() *taskRecord {
	c := *t
	c.Runs = append([]Run(nil), t.Runs...)
	return &c
}

// latest returns the last run or nil.
func (t *taskRecord) latest() *Run {
	if len(t.Runs) == 0 {
		return nil
	}
	return &t.Runs[len(t.Runs)-1]
}

// state derives the task state from its latest run.
func (t *taskRecord) state() string {
	if r := t.latest(); r != nil {
		return r.State
	}
	return tcwire.StateUnscheduled
}

// resolved tells whether the task reached a final resolution.
func (t *taskRecord) resolved() bool {
	switch t.state() {
	case tcwire.StateCompleted, tcwire.StateFailed, tcwire.StateException:
		return true
	}
	return false
}

func (t *taskRecord) status() TaskStatus {
	d := &t.Definition
	return TaskStatus{
		TaskID:        t.TaskID,
		ProvisionerID: d.ProvisionerID,
		WorkerType:    d.WorkerType,
		TaskQueueID:   d.TaskQueueID,
		SchedulerID:   d.SchedulerID,
		ProjectID:     d.ProjectID,
		TaskGroupID:   d.TaskGroupID,
		Priority:      d.Priority,
		Deadline:      d.Deadline,
		Expires:       d.Expires,
		RetriesLeft:   t.RetriesLeft,
		State:         t.state(),
		Runs:          append([]Run{}, t.Runs...),
	}
}

// artifactRecord is what the database holds per artifact.
type artifactRecord struct {
	TaskID        string    `json:"taskId"`
	RunID         int       `json:"runId"`
	Name          string    `json:"name"`
	StorageType   string    `json:"storageType"`
	ContentType   string    `json:"contentType"`
	Expires       time.Time `json:"expires"`
	ContentLength *int64    `json:"contentLength,omitempty"`
	Present       bool      `json:"present"`
	// Blob is the storage key of an s3 artifact's bytes.
	Blob string `json:"blob,omitempty"`
	// Object artifacts.
	ObjectName string `json:"objectName,omitempty"`
	ProjectID  string `json:"projectId,omitempty"`
	UploadID   string `json:"uploadId,omitempty"`
	// Reference, link and error artifacts.
	URL     string `json:"url,omitempty"`
	Link    string `json:"link,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// objectRecord is what the database holds per object-service object.
type objectRecord struct {
	Name      string            `json:"name"`
	ProjectID string            `json:"projectId"`
	UploadID  string            `json:"uploadId"`
	Expires   time.Time         `json:"expires"`
	Hashes    map[string]string `json:"hashes,omitempty"`
	Finished  bool              `json:"finished"`
	Blob      string            `json:"blob"`
}

// blobRecord describes stored bytes (an s3 artifact's or an object's).
type blobRecord struct {
	Key             string `json:"key"`
	ContentType     string `json:"contentType"`
	ContentEncoding string `json:"contentEncoding,omitempty"`
	Size            int64  `json:"size"`
	Uploaded        bool   `json:"uploaded"`
	// Inline: the bytes are in queue.db (bucket blobdata), not in a file
	// (uploads of at most inlineBlobMax bytes).
	Inline bool `json:"inline,omitempty"`
}
