package localqueue

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

// Identifier patterns of the Queue's schemas (task.json,
// claim-work-request.json).
var (
	slugIDPattern      = regexp.MustCompile(`^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$`)
	taskQueueIDPattern = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$`)
	provisionerPattern = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,38}$`)
	workerTypePattern  = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,36}[a-z0-9])?$`)
	identifierPattern  = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,38}$`)
	projectIDPattern   = regexp.MustCompile(`^[a-zA-Z0-9._/-]{1,500}$`)
	sourcePattern      = regexp.MustCompile(`^(https?://|ssh://|git@)`)
	scopePattern       = regexp.MustCompile(`^[ -~]*$`)
)

// Limits the Queue applies to task definitions.
const (
	maxDeadline   = 5 * 24 * time.Hour
	allowedDrift  = 15 * time.Minute
	defaultExpiry = 365 * 24 * time.Hour
)

// defaultRetries is the retries of a task whose definition gives none.
const defaultRetries = 5

// NewTaskID returns a fresh taskId: a random v4 UUID in URL-safe base64
// without padding (a "slugid"), first bit clear like Taskcluster's nice
// slugids.
func NewTaskID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	b[0] &= 0x7f
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// createTaskRequest is create-task-request.json; pointers tell absent
// fields (which get defaults) from given ones.
type createTaskRequest struct {
	ProvisionerID *string            `json:"provisionerId"`
	WorkerType    *string            `json:"workerType"`
	TaskQueueID   *string            `json:"taskQueueId"`
	SchedulerID   *string            `json:"schedulerId"`
	ProjectID     *string            `json:"projectId"`
	TaskGroupID   *string            `json:"taskGroupId"`
	Dependencies  []string           `json:"dependencies"`
	Requires      *string            `json:"requires"`
	Routes        []string           `json:"routes"`
	Priority      *string            `json:"priority"`
	Retries       *int               `json:"retries"`
	Created       *time.Time         `json:"created"`
	Deadline      *time.Time         `json:"deadline"`
	Expires       *time.Time         `json:"expires"`
	Scopes        []string           `json:"scopes"`
	Payload       json.RawMessage    `json:"payload"`
	Metadata      *requestMetadata   `json:"metadata"`
	Tags          map[string]*string `json:"tags"`
	Extra         json.RawMessage    `json:"extra"`
}

type requestMetadata struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Owner       *string `json:"owner"`
	Source      *string `json:"source"`
}

// parseTaskDefinition decodes and validates a createTask body against the
// rules of create-task-request.json and the Queue, filling defaults.
func parseTaskDefinition(taskID string, body []byte, now time.Time) (TaskDefinition, error) {
	if !slugIDPattern.MatchString(taskID) {
		return TaskDefinition{}, errInput("taskId %q is not a slugid", taskID)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req createTaskRequest
	if err := dec.Decode(&req); err != nil {
		return TaskDefinition{}, errInput("task definition: %v", err)
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	str := func(p *string, def string) string {
		if p == nil {
			return def
		}
		return *p
	}
	d := TaskDefinition{
		SchedulerID:  str(req.SchedulerID, "-"),
		ProjectID:    str(req.ProjectID, "none"),
		TaskGroupID:  str(req.TaskGroupID, taskID),
		Dependencies: req.Dependencies,
		Requires:     str(req.Requires, "all-completed"),
		Routes:       req.Routes,
		Priority:     str(req.Priority, "lowest"),
		Retries:      new(defaultRetries),
		Scopes:       req.Scopes,
		Payload:      req.Payload,
		Extra:        req.Extra,
		Tags:         map[string]string{},
	}
	// Queue identity: taskQueueId, or provisionerId + workerType, or both
	// agreeing.
	switch {
	case req.TaskQueueID != nil:
		d.TaskQueueID = *req.TaskQueueID
		if !taskQueueIDPattern.MatchString(d.TaskQueueID) {
			bad("taskQueueId %q does not match %s", d.TaskQueueID, taskQueueIDPattern)
		}
		d.ProvisionerID, d.WorkerType, _ = strings.Cut(d.TaskQueueID, "/")
		if (req.ProvisionerID != nil && *req.ProvisionerID != d.ProvisionerID) || (req.WorkerType != nil && *req.WorkerType != d.WorkerType) {
			bad("provisionerId/workerType must match taskQueueId %q", d.TaskQueueID)
		}
	case req.ProvisionerID != nil && req.WorkerType != nil:
		d.ProvisionerID, d.WorkerType = *req.ProvisionerID, *req.WorkerType
		d.TaskQueueID = d.ProvisionerID + "/" + d.WorkerType
		if !provisionerPattern.MatchString(d.ProvisionerID) || !workerTypePattern.MatchString(d.WorkerType) {
			bad("provisionerId %q / workerType %q do not match their patterns", d.ProvisionerID, d.WorkerType)
		}
	default:
		bad("taskQueueId (or provisionerId and workerType) is required")
	}
	if !identifierPattern.MatchString(d.SchedulerID) {
		bad("schedulerId %q does not match %s", d.SchedulerID, identifierPattern)
	}
	if !projectIDPattern.MatchString(d.ProjectID) {
		bad("projectId %q does not match %s", d.ProjectID, projectIDPattern)
	}
	if !slugIDPattern.MatchString(d.TaskGroupID) {
		bad("taskGroupId %q is not a slugid", d.TaskGroupID)
	}
	if d.Dependencies == nil {
		d.Dependencies = []string{}
	}
	seen := map[string]bool{}
	for _, dep := range d.Dependencies {
		if !slugIDPattern.MatchString(dep) {
			bad("dependency %q is not a slugid", dep)
		}
		if seen[dep] {
			bad("dependency %q is listed twice", dep)
		}
		seen[dep] = true
	}
	if len(d.Dependencies) > 10000 {
		bad("more than 10000 dependencies")
	}
	if d.Requires != "all-completed" && d.Requires != "all-resolved" {
		bad("requires %q is not all-completed or all-resolved", d.Requires)
	}
	if d.Routes == nil {
		d.Routes = []string{}
	}
	if len(d.Routes) > 64 {
		bad("more than 64 routes")
	}
	for _, r := range d.Routes {
		if len(r) < 1 || len(r) > 249 {
			bad("route %q must be 1 to 249 characters", r)
		}
	}
	if _, ok := priorities[d.Priority]; !ok {
		bad("priority %q is not one of highest, very-high, high, medium, low, very-low, lowest", d.Priority)
	}
	if req.Retries != nil {
		d.Retries = req.Retries
		if *d.Retries < 0 || *d.Retries > 49 {
			bad("retries %d is not within 0..49", *d.Retries)
		}
	}
	if d.Scopes == nil {
		d.Scopes = []string{}
	}
	for _, sc := range d.Scopes {
		if !scopePattern.MatchString(sc) || strings.HasSuffix(sc, "**") {
			bad("scope %q is not printable ASCII or ends in more than one *", sc)
		}
	}
	if len(bytes.TrimSpace(d.Payload)) == 0 || bytes.TrimSpace(d.Payload)[0] != '{' {
		bad("payload must be an object")
	}
	if len(bytes.TrimSpace(d.Extra)) == 0 || string(bytes.TrimSpace(d.Extra)) == "null" {
		d.Extra = json.RawMessage(`{}`)
	} else if bytes.TrimSpace(d.Extra)[0] != '{' {
		bad("extra must be an object")
	}
	for k, v := range req.Tags {
		if v == nil || len(*v) > 4096 {
			bad("tag %q must be a string of at most 4096 characters", k)
			continue
		}
		d.Tags[k] = *v
	}
	if req.Metadata == nil {
		bad("metadata is required")
	} else {
		m := req.Metadata
		if m.Name == nil || m.Description == nil || m.Owner == nil || m.Source == nil {
			bad("metadata needs name, description, owner and source")
		} else {
			d.Metadata = tcwire.TaskMetadata{Name: *m.Name, Description: *m.Description, Owner: *m.Owner, Source: *m.Source}
			if len(d.Metadata.Name) > 255 || len(d.Metadata.Owner) > 255 || len(d.Metadata.Description) > 32768 || len(d.Metadata.Source) > 4096 {
				bad("metadata field too long")
			}
			if !sourcePattern.MatchString(d.Metadata.Source) {
				bad("metadata.source %q must start with http://, https://, ssh:// or git@", d.Metadata.Source)
			}
		}
	}
	if req.Created == nil || req.Deadline == nil {
		bad("created and deadline are required")
	} else {
		d.Created = req.Created.UTC()
		d.Deadline = req.Deadline.UTC()
		d.Expires = d.Deadline.Add(defaultExpiry)
		if req.Expires != nil && !req.Expires.IsZero() {
			d.Expires = req.Expires.UTC()
		}
		if d.Deadline.After(now.Add(maxDeadline + allowedDrift)) {
			bad("deadline %s is more than 5 days in the future", fmtTime(d.Deadline))
		}
		if d.Created.After(now.Add(allowedDrift)) {
			bad("created %s is more than 15 minutes in the future", fmtTime(d.Created))
		}
		if d.Deadline.After(d.Expires) {
			bad("deadline %s is after expires %s", fmtTime(d.Deadline), fmtTime(d.Expires))
		}
	}
	if len(problems) > 0 {
		return TaskDefinition{}, errInput("invalid task definition:\n%s", strings.Join(problems, "\n"))
	}
	// Canonical JSON for payload and extra, so idempotence compares values.
	d.Payload = canonicalJSON(d.Payload)
	d.Extra = canonicalJSON(d.Extra)
	return d, nil
}

func canonicalJSON(raw json.RawMessage) json.RawMessage {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}

// createTaskScopes is the scope requirement of createTask for d
// (api.json): every task scope, queue:route:<route> per route, the project
// and scheduler scopes, and queue:create-task:<priority>:<taskQueueId> for
// the task's priority or a higher one.
func createTaskParams(taskID string, d TaskDefinition) scopeParams {
	var prios []string
	for name, rank := range priorities {
		if rank >= priorities[d.Priority] {
			prios = append(prios, name)
		}
	}
	return scopeParams{
		"taskId":        taskID,
		"scopes":        d.Scopes,
		"routes":        d.Routes,
		"priorities":    prios,
		"projectId":     d.ProjectID,
		"schedulerId":   d.SchedulerID,
		"provisionerId": d.ProvisionerID,
		"workerType":    d.WorkerType,
	}
}

// CreateTask defines a task as the createTask endpoint does, without
// authentication; members def leaves empty get the Queue's defaults (see
// tcwire.TaskDefinition). Creating the same definition again returns the
// current status; a different one fails with ErrConflict.
func (s *Server) CreateTask(ctx context.Context, taskID string, def *TaskDefinition) (TaskStatus, error) {
	return s.CreateTaskJSON(ctx, taskID, def)
}

// CreateTaskJSON is CreateTask for a definition given as JSON
// (create-task-request.json): raw bytes ([]byte or json.RawMessage) or any
// value that marshals to it, such as a map. It is checked as the HTTP
// endpoint checks a body, unknown members included.
func (s *Server) CreateTaskJSON(ctx context.Context, taskID string, def any) (TaskStatus, error) {
	var body []byte
	switch v := def.(type) {
	case []byte:
		body = v
	case json.RawMessage:
		body = v
	default:
		b, err := json.Marshal(def)
		if err != nil {
			return TaskStatus{}, fmt.Errorf("encoding task definition: %w", err)
		}
		body = b
	}
	if err := ctx.Err(); err != nil {
		return TaskStatus{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := parseTaskDefinition(taskID, body, s.now())
	if err != nil {
		return TaskStatus{}, err
	}
	return s.createTaskLocked(taskID, d)
}

func (s *Server) createTaskLocked(taskID string, d TaskDefinition) (TaskStatus, error) {
	if err := s.sweepLocked(); err != nil {
		return TaskStatus{}, err
	}
	if old := s.tasks[taskID]; old != nil {
		a, _ := json.Marshal(old.Definition)
		b, _ := json.Marshal(d)
		if !bytes.Equal(a, b) {
			return TaskStatus{}, errConflict("taskId `%s` already used by another task definition", taskID)
		}
		return old.status(), nil
	}
	// All tasks of a task group share its schedulerId.
	for _, t := range s.tasks {
		if t.Definition.TaskGroupID == d.TaskGroupID && t.Definition.SchedulerID != d.SchedulerID {
			return TaskStatus{}, errConflict("task group %s has schedulerId %q; tasks in it cannot use %q", d.TaskGroupID, t.Definition.SchedulerID, d.SchedulerID)
		}
	}
	var missing []string
	for _, dep := range d.Dependencies {
		if dep != taskID && s.tasks[dep] == nil {
			missing = append(missing, dep)
		}
	}
	if len(missing) > 0 {
		return TaskStatus{}, errInput("task dependencies not found: %s", strings.Join(missing, ", "))
	}
	t := &taskRecord{TaskID: taskID, Definition: d, RetriesLeft: *d.Retries, Runs: []Run{}}
	if s.dependenciesSatisfiedLocked(t) {
		t.Runs = append(t.Runs, Run{RunID: 0, State: tcwire.StatePending, ReasonCreated: tcwire.ReasonScheduled, Scheduled: s.now()})
	}
	if err := s.saveLocked(t); err != nil {
		return TaskStatus{}, err
	}
	s.log.Info("task created", "taskId", taskID, "taskQueueId", d.TaskQueueID, "state", t.state())
	return t.status(), nil
}
