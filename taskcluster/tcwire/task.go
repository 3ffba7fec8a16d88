package tcwire

import (
	"encoding/json"
	"time"
)

// TaskDefinition is a task definition in the Queue's shape: what
// createTask accepts (create-task-request.json) and what the `task` and
// `claimWork` endpoints serve (task.json). Payload and Extra are raw JSON:
// the engine and each plugin decode the payload fields they own.
//
// Marshalling leaves out members the creator did not set (empty strings,
// nil slices and maps, a nil Retries, a zero Expires, an empty Extra), so
// the Queue fills in its defaults; the Queue itself fills every member, and
// what it serves round-trips (empty lists and objects are kept). Times are
// written with millisecond precision (FormatTime), as the Queue stores them.
type TaskDefinition struct {
	ProvisionerID string   `json:"provisionerId,omitempty"`
	WorkerType    string   `json:"workerType,omitempty"`
	TaskQueueID   string   `json:"taskQueueId,omitempty"` // "<provisionerId>/<workerType>"
	SchedulerID   string   `json:"schedulerId,omitempty"` // default "-"
	ProjectID     string   `json:"projectId,omitempty"`   // default "none"
	TaskGroupID   string   `json:"taskGroupId,omitempty"` // default: the taskId
	Dependencies  []string `json:"dependencies,omitzero"` // taskIds
	Requires      string   `json:"requires,omitempty"`    // "all-completed" (default) or "all-resolved"
	Routes        []string `json:"routes,omitzero"`
	Priority      string   `json:"priority,omitempty"` // "highest" ... "lowest" (default)
	// Retries is how many times the Queue reruns the task after
	// intermittent failures, 0 to 49; nil leaves the default (5) to the
	// Queue, which always serves it.
	Retries  *int              `json:"retries,omitempty"`
	Created  time.Time         `json:"created"`
	Deadline time.Time         `json:"deadline"`
	Expires  time.Time         `json:"expires,omitzero"` // default: a year after the deadline
	Scopes   []string          `json:"scopes,omitzero"`
	Payload  json.RawMessage   `json:"payload"`
	Metadata TaskMetadata      `json:"metadata"`
	Tags     map[string]string `json:"tags,omitzero"`
	Extra    json.RawMessage   `json:"extra,omitempty"`
}

// TaskMetadata is a task definition's `metadata` (task-metadata.json).
type TaskMetadata struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Owner       string `json:"owner"`  // an email address
	Source      string `json:"source"` // a URL: http(s)://, ssh:// or git@
}

// MarshalJSON writes the definition with its times in millisecond
// precision (FormatTime).
func (d TaskDefinition) MarshalJSON() ([]byte, error) {
	type plain TaskDefinition
	var expires string
	if !d.Expires.IsZero() {
		expires = FormatTime(d.Expires)
	}
	return json.Marshal(struct {
		plain
		Created  string `json:"created"`
		Deadline string `json:"deadline"`
		Expires  string `json:"expires,omitempty"`
	}{plain(d), FormatTime(d.Created), FormatTime(d.Deadline), expires})
}

// FormatTime renders t as Taskcluster's clients and services do: UTC with
// exactly three fractional digits, e.g. "2030-01-01T00:00:00.000Z"
// (truncated, so an expiry never moves later).
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
