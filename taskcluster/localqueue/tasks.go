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
// rules of create-task-request.json and the Queue, filling defaults. Every
// problem found is reported, one per line.
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
	d := withDefaults(taskID, &req)
	var p problems
	p.checkQueueIdentity(&d, &req)
	p.checkIdentifiers(&d)
	p.checkLists(&d)
	p.checkRetriesAndPriority(&d, req.Retries)
	p.checkScopes(&d)
	p.checkPayloadAndExtra(&d)
	p.checkTags(&d, req.Tags)
	p.checkMetadata(&d, req.Metadata)
	p.checkTimes(&d, &req, now)
	if len(p) > 0 {
		return TaskDefinition{}, errInput("invalid task definition:\n%s", strings.Join(p, "\n"))
	}
	// Canonical JSON for payload and extra, so idempotence compares values.
	d.Payload = canonicalJSON(d.Payload)
	d.Extra = canonicalJSON(d.Extra)
	return d, nil
}

// orEmpty is l, or an empty list for nil (the Queue serves [] for lists a
// definition leaves out).
func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// problems collects what is wrong with a task definition.
type problems []string

func (p *problems) add(format string, a ...any) { *p = append(*p, fmt.Sprintf(format, a...)) }

// withDefaults is the definition req gives, with the Queue's defaults for
// the members it leaves out (queue identity, metadata and times are filled
// by the checks).
func withDefaults(taskID string, req *createTaskRequest) TaskDefinition {
	str := func(p *string, def string) string {
		if p == nil {
			return def
		}
		return *p
	}
	return TaskDefinition{
		SchedulerID:  str(req.SchedulerID, "-"),
		ProjectID:    str(req.ProjectID, "none"),
		TaskGroupID:  str(req.TaskGroupID, taskID),
		Dependencies: orEmpty(req.Dependencies),
		Requires:     str(req.Requires, "all-completed"),
		Routes:       orEmpty(req.Routes),
		Priority:     str(req.Priority, "lowest"),
		Retries:      new(defaultRetries),
		Scopes:       orEmpty(req.Scopes),
		Payload:      req.Payload,
		Extra:        req.Extra,
		Tags:         map[string]string{},
	}
}

// checkQueueIdentity sets taskQueueId, provisionerId and workerType from
// taskQueueId, or provisionerId + workerType, or both agreeing.
func (p *problems) checkQueueIdentity(d *TaskDefinition, req *createTaskRequest) {
	switch {
	case req.TaskQueueID != nil:
		d.TaskQueueID = *req.TaskQueueID
		if !taskQueueIDPattern.MatchString(d.TaskQueueID) {
			p.add("taskQueueId %q does not match %s", d.TaskQueueID, taskQueueIDPattern)
		}
		d.ProvisionerID, d.WorkerType, _ = strings.Cut(d.TaskQueueID, "/")
		if (req.ProvisionerID != nil && *req.ProvisionerID != d.ProvisionerID) || (req.WorkerType != nil && *req.WorkerType != d.WorkerType) {
			p.add("provisionerId/workerType must match taskQueueId %q", d.TaskQueueID)
		}
	case req.ProvisionerID != nil && req.WorkerType != nil:
		d.ProvisionerID, d.WorkerType = *req.ProvisionerID, *req.WorkerType
		d.TaskQueueID = d.ProvisionerID + "/" + d.WorkerType
		if !provisionerPattern.MatchString(d.ProvisionerID) || !workerTypePattern.MatchString(d.WorkerType) {
			p.add("provisionerId %q / workerType %q do not match their patterns", d.ProvisionerID, d.WorkerType)
		}
	default:
		p.add("taskQueueId (or provisionerId and workerType) is required")
	}
}

// checkIdentifiers checks schedulerId, projectId and taskGroupId.
func (p *problems) checkIdentifiers(d *TaskDefinition) {
	if !identifierPattern.MatchString(d.SchedulerID) {
		p.add("schedulerId %q does not match %s", d.SchedulerID, identifierPattern)
	}
	if !projectIDPattern.MatchString(d.ProjectID) {
		p.add("projectId %q does not match %s", d.ProjectID, projectIDPattern)
	}
	if !slugIDPattern.MatchString(d.TaskGroupID) {
		p.add("taskGroupId %q is not a slugid", d.TaskGroupID)
	}
}

// checkLists checks dependencies, requires and routes.
func (p *problems) checkLists(d *TaskDefinition) {
	seen := map[string]bool{}
	for _, dep := range d.Dependencies {
		if !slugIDPattern.MatchString(dep) {
			p.add("dependency %q is not a slugid", dep)
		}
		if seen[dep] {
			p.add("dependency %q is listed twice", dep)
		}
		seen[dep] = true
	}
	if len(d.Dependencies) > 10000 {
		p.add("more than 10000 dependencies")
	}
	if d.Requires != "all-completed" && d.Requires != "all-resolved" {
		p.add("requires %q is not all-completed or all-resolved", d.Requires)
	}
	if len(d.Routes) > 64 {
		p.add("more than 64 routes")
	}
	for _, r := range d.Routes {
		if len(r) < 1 || len(r) > 249 {
			p.add("route %q must be 1 to 249 characters", r)
		}
	}
}

// checkScopes checks the task's scopes are printable ASCII ending in at
// most one "*".
func (p *problems) checkScopes(d *TaskDefinition) {
	for _, sc := range d.Scopes {
		if !scopePattern.MatchString(sc) || strings.HasSuffix(sc, "**") {
			p.add("scope %q is not printable ASCII or ends in more than one *", sc)
		}
	}
}

// checkRetriesAndPriority checks priority and takes retries when given.
func (p *problems) checkRetriesAndPriority(d *TaskDefinition, retries *int) {
	if _, ok := priorities[d.Priority]; !ok {
		p.add("priority %q is not one of highest, very-high, high, medium, low, very-low, lowest", d.Priority)
	}
	if retries != nil {
		d.Retries = retries
		if *d.Retries < 0 || *d.Retries > 49 {
			p.add("retries %d is not within 0..49", *d.Retries)
		}
	}
}

// checkPayloadAndExtra requires an object payload and defaults extra to {}.
func (p *problems) checkPayloadAndExtra(d *TaskDefinition) {
	if len(bytes.TrimSpace(d.Payload)) == 0 || bytes.TrimSpace(d.Payload)[0] != '{' {
		p.add("payload must be an object")
	}
	if len(bytes.TrimSpace(d.Extra)) == 0 || string(bytes.TrimSpace(d.Extra)) == "null" {
		d.Extra = json.RawMessage(`{}`)
	} else if bytes.TrimSpace(d.Extra)[0] != '{' {
		p.add("extra must be an object")
	}
}

// checkTags takes the tags, each a string of at most 4096 characters.
func (p *problems) checkTags(d *TaskDefinition, tags map[string]*string) {
	for k, v := range tags {
		if v == nil || len(*v) > 4096 {
			p.add("tag %q must be a string of at most 4096 characters", k)
			continue
		}
		d.Tags[k] = *v
	}
}

// checkMetadata takes the metadata, all four members required.
func (p *problems) checkMetadata(d *TaskDefinition, m *requestMetadata) {
	if m == nil {
		p.add("metadata is required")
		return
	}
	if m.Name == nil || m.Description == nil || m.Owner == nil || m.Source == nil {
		p.add("metadata needs name, description, owner and source")
		return
	}
	d.Metadata = tcwire.TaskMetadata{Name: *m.Name, Description: *m.Description, Owner: *m.Owner, Source: *m.Source}
	if len(d.Metadata.Name) > 255 || len(d.Metadata.Owner) > 255 || len(d.Metadata.Description) > 32768 || len(d.Metadata.Source) > 4096 {
		p.add("metadata field too long")
	}
	if !sourcePattern.MatchString(d.Metadata.Source) {
		p.add("metadata.source %q must start with http://, https://, ssh:// or git@", d.Metadata.Source)
	}
}

// checkTimes takes created, deadline and expires (default: a year after
// the deadline) and checks them against now and each other.
func (p *problems) checkTimes(d *TaskDefinition, req *createTaskRequest, now time.Time) {
	if req.Created == nil || req.Deadline == nil {
		p.add("created and deadline are required")
		return
	}
	d.Created = req.Created.UTC()
	d.Deadline = req.Deadline.UTC()
	d.Expires = d.Deadline.Add(defaultExpiry)
	if req.Expires != nil && !req.Expires.IsZero() {
		d.Expires = req.Expires.UTC()
	}
	if d.Deadline.After(now.Add(maxDeadline + allowedDrift)) {
		p.add("deadline %s is more than 5 days in the future", fmtTime(d.Deadline))
	}
	if d.Created.After(now.Add(allowedDrift)) {
		p.add("created %s is more than 15 minutes in the future", fmtTime(d.Created))
	}
	if d.Deadline.After(d.Expires) {
		p.add("deadline %s is after expires %s", fmtTime(d.Deadline), fmtTime(d.Expires))
	}
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
