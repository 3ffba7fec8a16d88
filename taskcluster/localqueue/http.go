package localqueue

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/workergen/workergen/taskcluster/hawk"
	"github.com/workergen/workergen/taskcluster/tcwire"
)

var jsonMarshal = json.Marshal

// maxAPIBody bounds API request bodies (task definitions are the largest).
const maxAPIBody = 10 << 20

// route is one API endpoint: its name, method and route as in the API
// reference (references/<service>/v1/api.json), its scope expression in
// the reference's syntax, and its handler.
type route struct {
	service string // "queue" or "object"
	name    string
	method  string
	path    string // api.json syntax: /task/<taskId>/runs/<runId>
	scopes  any
	handle  func(c *call) error
}

// call is one API request being served.
type call struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	route  *route
	body   []byte
	scopes []string
	client string
	base   string
}

// param returns a path parameter.
func (c *call) param(name string) string { return c.r.PathValue(name) }

// runID parses the runId path parameter.
func (c *call) runID() (int, error) {
	v, err := strconv.Atoi(c.param("runId"))
	if err != nil || v < 0 || v > 1000 {
		return 0, errInput("runId %q is not an integer within 0..1000", c.param("runId"))
	}
	return v, nil
}

// authorize checks the route's scope expression with params (path
// parameters are added) against the caller's scopes.
func (c *call) authorize(params scopeParams) error {
	if params == nil {
		params = scopeParams{}
	}
	for _, name := range pathParams(c.route.path) {
		if _, ok := params[name]; !ok {
			params[name] = c.param(name)
		}
	}
	ok, err := evalScopes(c.route.scopes, params, c.scopes)
	if err != nil {
		return fmt.Errorf("authorizing %s: %w", c.route.name, err)
	}
	if !ok {
		return &apiError{http.StatusForbidden, "InsufficientScopes",
			fmt.Sprintf("client %q lacks the scopes for %s: needs %s", c.client, c.route.name, requiredScopes(c.route.scopes, params)), ErrScopes}
	}
	return nil
}

// decode parses the JSON body into v.
func (c *call) decode(v any) error {
	if err := json.Unmarshal(c.body, v); err != nil {
		return errInput("request body: %v", err)
	}
	return nil
}

// reply writes a 200 JSON response.
func (c *call) reply(v any) error {
	return writeJSON(c.w, http.StatusOK, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(data)
	return nil
}

// pathParams lists the <param> names of an api.json route.
func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "<") && strings.HasSuffix(seg, ">") {
			out = append(out, seg[1:len(seg)-1])
		}
	}
	return out
}

// muxPattern turns an api.json route into a ServeMux pattern. The last
// parameter of a route may contain slashes (artifact names, object names,
// taskQueueIds) and so matches the rest of the path.
func muxPattern(prefix string, rt *route) string {
	segs := strings.Split(rt.path, "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, "<") && strings.HasSuffix(seg, ">") {
			name := seg[1 : len(seg)-1]
			if i == len(segs)-1 {
				segs[i] = "{" + name + "...}"
			} else {
				segs[i] = "{" + name + "}"
			}
		}
	}
	return strings.ToUpper(rt.method) + " " + prefix + strings.Join(segs, "/")
}

// apiRoutes is the served API. Scope expressions are those of the
// upstream references (checked by TestRoutesMatchReference).
func (s *Server) apiRoutes() []*route {
	runScope := func(verb string) string { return "queue:" + verb + ":<taskId>/<runId>" }
	getArtifactScopes := allOf{each{For: "name", In: "names", Each: "queue:get-artifact:<name>"}}
	return append([]*route{
		{service: "queue", name: "ping", method: "get", path: "/ping", handle: handlePing},
		{service: "queue", name: "task", method: "get", path: "/task/<taskId>", scopes: "queue:get-task:<taskId>", handle: handleTask},
		{service: "queue", name: "status", method: "get", path: "/task/<taskId>/status", scopes: "queue:status:<taskId>", handle: handleStatus},
		{service: "queue", name: "listDependentTasks", method: "get", path: "/task/<taskId>/dependents", scopes: "queue:list-dependent-tasks:<taskId>", handle: handleListDependents},
		{service: "queue", name: "createTask", method: "put", path: "/task/<taskId>", scopes: allOf{
			each{For: "scope", In: "scopes", Each: "<scope>"},
			each{For: "route", In: "routes", Each: "queue:route:<route>"},
			"queue:create-task:project:<projectId>",
			"queue:scheduler-id:<schedulerId>",
			anyOf{each{For: "priority", In: "priorities", Each: "queue:create-task:<priority>:<provisionerId>/<workerType>"}},
		}, handle: handleCreateTask},
		{service: "queue", name: "cancelTask", method: "post", path: "/task/<taskId>/cancel", scopes: anyOf{
			"queue:cancel-task:<schedulerId>/<taskGroupId>/<taskId>",
			"queue:cancel-task-in-project:<projectId>",
			allOf{"queue:cancel-task", "assume:scheduler-id:<schedulerId>/<taskGroupId>"},
		}, handle: handleCancelTask},
		{service: "queue", name: "claimWork", method: "post", path: "/claim-work/<taskQueueId>", scopes: allOf{
			"queue:claim-work:<taskQueueId>", "queue:worker-id:<workerGroup>/<workerId>",
		}, handle: handleClaimWork},
		{service: "queue", name: "reclaimTask", method: "post", path: "/task/<taskId>/runs/<runId>/reclaim", scopes: runScope("reclaim-task"), handle: handleReclaim},
		{service: "queue", name: "reportCompleted", method: "post", path: "/task/<taskId>/runs/<runId>/completed", scopes: runScope("resolve-task"), handle: handleResolve(tcwire.StateCompleted)},
		{service: "queue", name: "reportFailed", method: "post", path: "/task/<taskId>/runs/<runId>/failed", scopes: runScope("resolve-task"), handle: handleResolve(tcwire.StateFailed)},
		{service: "queue", name: "reportException", method: "post", path: "/task/<taskId>/runs/<runId>/exception", scopes: runScope("resolve-task"), handle: handleResolve(tcwire.StateException)},
		{service: "queue", name: "createArtifact", method: "post", path: "/task/<taskId>/runs/<runId>/artifacts/<name>", scopes: runScope("create-artifact"), handle: handleCreateArtifact},
		{service: "queue", name: "finishArtifact", method: "put", path: "/task/<taskId>/runs/<runId>/artifacts/<name>", scopes: runScope("create-artifact"), handle: handleFinishArtifact},
		{service: "queue", name: "getArtifact", method: "get", path: "/task/<taskId>/runs/<runId>/artifacts/<name>", scopes: getArtifactScopes, handle: handleGetArtifact(false)},
		{service: "queue", name: "getLatestArtifact", method: "get", path: "/task/<taskId>/artifacts/<name>", scopes: getArtifactScopes, handle: handleGetArtifact(true)},
		{service: "queue", name: "artifact", method: "get", path: "/task/<taskId>/runs/<runId>/artifact-content/<name>", scopes: getArtifactScopes, handle: handleArtifactContent(false)},
		{service: "queue", name: "latestArtifact", method: "get", path: "/task/<taskId>/artifact-content/<name>", scopes: getArtifactScopes, handle: handleArtifactContent(true)},
		{service: "queue", name: "listArtifacts", method: "get", path: "/task/<taskId>/runs/<runId>/artifacts", scopes: "queue:list-artifacts:<taskId>:<runId>", handle: handleListArtifacts(false)},
		{service: "queue", name: "listLatestArtifacts", method: "get", path: "/task/<taskId>/artifacts", scopes: "queue:list-artifacts:<taskId>", handle: handleListArtifacts(true)},
		{service: "queue", name: "artifactInfo", method: "get", path: "/task/<taskId>/runs/<runId>/artifact-info/<name>", scopes: "queue:list-artifacts:<taskId>:<runId>", handle: handleArtifactInfo(false)},
		{service: "queue", name: "latestArtifactInfo", method: "get", path: "/task/<taskId>/artifact-info/<name>", scopes: "queue:list-artifacts:<taskId>", handle: handleArtifactInfo(true)},
		{service: "object", name: "ping", method: "get", path: "/ping", handle: handlePing},
		{service: "object", name: "createUpload", method: "put", path: "/upload/<name>", scopes: "object:upload:<projectId>:<name>", handle: handleCreateUpload},
		{service: "object", name: "finishUpload", method: "post", path: "/finish-upload/<name>", scopes: "object:upload:<projectId>:<name>", handle: handleFinishUpload},
		{service: "object", name: "startDownload", method: "put", path: "/start-download/<name>", scopes: "object:download:<name>", handle: handleStartDownload},
		{service: "object", name: "object", method: "get", path: "/metadata/<name>", scopes: "object:download:<name>", handle: handleObjectMetadata},
		{service: "object", name: "download", method: "get", path: "/download/<name>", scopes: "object:download:<name>", handle: handleDownload},
	}, append(s.workerManagerRoutes(), s.authRoutes()...)...)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.apiRoutes() {
		mux.Handle(muxPattern("/api/"+rt.service+"/v1", rt), s.apiHandler(rt))
	}
	mux.HandleFunc("PUT /_localqueue/put/{blob...}", s.handleBlobPut)
	mux.HandleFunc("GET /_localqueue/get/{blob...}", s.handleBlobGet)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_ = writeJSON(w, http.StatusNotFound, errorBody(r, "", errNotFound("no endpoint %s %s", r.Method, r.URL.Path), nil))
	})
	return mux
}

// checkParams applies the Queue's URL parameter patterns: artifact names
// are printable ASCII, taskIds slugids.
func checkParams(c *call) error {
	for _, p := range pathParams(c.route.path) {
		v := c.param(p)
		bad := false
		switch p {
		case "name":
			bad = c.route.service == "queue" && !printableASCII.MatchString(v)
		case "taskId":
			bad = !slugIDPattern.MatchString(v)
		}
		if bad {
			return &apiError{http.StatusBadRequest, "InvalidRequestArguments", fmt.Sprintf("invalid %s %q", p, v), ErrInput}
		}
	}
	return nil
}

var printableASCII = regexp.MustCompile(`^[\x20-\x7e]+$`)

func (s *Server) baseURL(r *http.Request) string {
	if s.opts.BaseURL != "" {
		return strings.TrimSuffix(s.opts.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) apiHandler(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAPIBody+1))
		if err == nil && len(body) > maxAPIBody {
			err = errInput("request body larger than %d bytes", maxAPIBody)
		}
		c := &call{s: s, w: w, r: r, route: rt, body: body, base: s.baseURL(r)}
		if err == nil {
			err = checkParams(c)
		}
		if err == nil {
			err = s.authenticate(c)
		}
		if err == nil {
			err = rt.handle(c)
		}
		if err != nil {
			s.writeError(c, err)
		}
	})
}

// authenticate verifies the Hawk header or bewit (adding the anonymous
// scopes to the caller's), or grants only the anonymous scopes to a request
// carrying neither.
func (s *Server) authenticate(c *call) error {
	id, err := s.auth.Authenticate(c.r.Context(), c.r)
	if errors.Is(err, hawk.ErrMissingAuth) {
		c.scopes, c.client = s.opts.AnonymousScopes, "anonymous"
		return nil
	}
	if err == nil && id.Header != nil {
		err = id.Header.VerifyPayloadHash(c.r.Header.Get("Content-Type"), c.body)
	}
	if err != nil {
		return &apiError{http.StatusUnauthorized, "AuthenticationFailed", err.Error(), ErrAuth}
	}
	// Every caller also has the anonymous scopes, as every Taskcluster
	// client implicitly has the `anonymous` role.
	c.scopes = append(append([]string{}, id.Scopes...), s.opts.AnonymousScopes...)
	c.client = id.ClientID
	// As the Auth service does, the caller's roles (assume:) are expanded.
	if c.scopes, err = s.roles.expand(c.scopes); err != nil {
		return &apiError{http.StatusInternalServerError, "InternalServerError", err.Error(), err}
	}
	return nil
}

// errorBody is Taskcluster's error response shape.
func errorBody(r *http.Request, name string, err error, body []byte) map[string]any {
	code, msg := "InternalServerError", err.Error()
	var ae *apiError
	if errors.As(err, &ae) {
		code, msg = ae.code, ae.msg
	}
	info := map[string]any{"method": name, "time": time.Now().UTC().Format(time.RFC3339Nano)}
	if len(body) > 0 && json.Valid(body) {
		info["payload"] = json.RawMessage(body)
	}
	return map[string]any{"code": code, "message": msg, "requestInfo": info}
}

func (s *Server) writeError(c *call, err error) {
	status := http.StatusInternalServerError
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		status = ae.status
	case errors.Is(err, ErrClosed):
		status = http.StatusServiceUnavailable
	default:
		s.log.Error("request failed", "method", c.route.name, "err", err)
	}
	_ = writeJSON(c.w, status, errorBody(c.r, c.route.name, err, c.body))
}

func handlePing(c *call) error {
	return c.reply(map[string]any{"alive": true, "uptime": 0})
}

func handleTask(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	d, err := c.s.Task(c.param("taskId"))
	if err != nil {
		return err
	}
	return c.reply(d)
}

func handleStatus(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	st, err := c.s.Status(c.param("taskId"))
	if err != nil {
		return err
	}
	return c.reply(map[string]any{"status": st})
}

// handleListDependents answers listDependentTasks: the tasks listing
// taskId in their dependencies, sorted by taskId, with limit and
// continuationToken paging.
func handleListDependents(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	deps, err := c.s.Dependents(c.param("taskId"))
	if err != nil {
		return err
	}
	start, end, next, err := page(c, len(deps))
	if err != nil {
		return err
	}
	res := map[string]any{"taskId": c.param("taskId"), "tasks": deps[start:end]}
	if next != "" {
		res["continuationToken"] = next
	}
	return c.reply(res)
}

// page applies the limit (default and most 1000) and continuationToken (an
// offset) query parameters to a list of n items.
func page(c *call, n int) (start, end int, next string, err error) {
	q := c.r.URL.Query()
	if tok := q.Get("continuationToken"); tok != "" {
		if start, err = strconv.Atoi(tok); err != nil || start < 0 || start > n {
			return 0, 0, "", errInput("bad continuationToken %q", tok)
		}
	}
	limit := 1000
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 {
			return 0, 0, "", errInput("bad limit %q", l)
		}
		limit = min(limit, 1000)
	}
	end = min(start+limit, n)
	if end < n {
		next = strconv.Itoa(end)
	}
	return start, end, next, nil
}

func handleCreateTask(c *call) error {
	taskID := c.param("taskId")
	d, err := parseTaskDefinition(taskID, c.body, c.s.now())
	if err != nil {
		return err
	}
	if err := c.authorize(createTaskParams(taskID, d)); err != nil {
		return err
	}
	c.s.mu.Lock()
	st, err := c.s.createTaskLocked(taskID, d)
	c.s.mu.Unlock()
	if err != nil {
		return err
	}
	return c.reply(map[string]any{"status": st})
}

func handleCancelTask(c *call) error {
	taskID := c.param("taskId")
	d, err := c.s.Task(taskID)
	if err != nil {
		return err
	}
	if err := c.authorize(scopeParams{"schedulerId": d.SchedulerID, "taskGroupId": d.TaskGroupID, "projectId": d.ProjectID}); err != nil {
		return err
	}
	st, err := c.s.Cancel(taskID)
	if err != nil {
		return err
	}
	return c.reply(map[string]any{"status": st})
}

func handleClaimWork(c *call) error {
	var req struct {
		Tasks       *int   `json:"tasks"`
		WorkerGroup string `json:"workerGroup"`
		WorkerID    string `json:"workerId"`
	}
	if err := c.decode(&req); err != nil {
		return err
	}
	queue := c.param("taskQueueId")
	if !taskQueueIDPattern.MatchString(queue) {
		return errInput("taskQueueId %q does not match %s", queue, taskQueueIDPattern)
	}
	if !identifierPattern.MatchString(req.WorkerGroup) || !identifierPattern.MatchString(req.WorkerID) {
		return errInput("workerGroup and workerId are required and must match %s", identifierPattern)
	}
	n := 1
	if req.Tasks != nil {
		n = *req.Tasks
	}
	if n < 1 || n > 32 {
		return errInput("tasks must be within 1..32")
	}
	if err := c.authorize(scopeParams{"workerGroup": req.WorkerGroup, "workerId": req.WorkerID}); err != nil {
		return err
	}
	claims, err := c.s.ClaimWork(c.r.Context(), queue, req.WorkerGroup, req.WorkerID, n)
	if err != nil {
		return err
	}
	return c.reply(map[string]any{"tasks": claims})
}

func handleReclaim(c *call) error {
	runID, err := c.runID()
	if err != nil {
		return err
	}
	if err := c.s.checkRunExists(c.param("taskId"), runID); err != nil {
		return err
	}
	if err := c.authorize(nil); err != nil {
		return err
	}
	res, err := c.s.ReclaimTask(c.param("taskId"), runID)
	if err != nil {
		return err
	}
	return c.reply(res)
}

func handleResolve(state string) func(c *call) error {
	return func(c *call) error {
		runID, err := c.runID()
		if err != nil {
			return err
		}
		reason := state
		if state == tcwire.StateException {
			var req struct {
				Reason string `json:"reason"`
			}
			if err := c.decode(&req); err != nil {
				return err
			}
			if !exceptionReasons[req.Reason] {
				return errInput("reason %q is not one of worker-shutdown, malformed-payload, resource-unavailable, internal-error, intermittent-task", req.Reason)
			}
			reason = req.Reason
		}
		if err := c.s.checkRunExists(c.param("taskId"), runID); err != nil {
			return err
		}
		if err := c.authorize(nil); err != nil {
			return err
		}
		st, err := c.s.Resolve(c.param("taskId"), runID, state, reason)
		if err != nil {
			return err
		}
		return c.reply(map[string]any{"status": st})
	}
}

// checkRunExists answers 404 for unknown tasks and runs before
// authorization, as the Queue does.
func (s *Server) checkRunExists(taskID string, runID int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _, err := s.runLocked(taskID, runID)
	return err
}

func handleCreateArtifact(c *call) error {
	runID, err := c.runID()
	if err != nil {
		return err
	}
	req, err := parsePostArtifact(c.body)
	if err != nil {
		return err
	}
	if err := c.s.checkRunExists(c.param("taskId"), runID); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.kind == ErrNotFound {
			return errInput("%s", ae.msg) // the Queue answers InputError here
		}
		return err
	}
	if err := c.authorize(nil); err != nil {
		return err
	}
	res, err := c.s.createArtifact(c.param("taskId"), runID, c.param("name"), req, c.base)
	if err != nil {
		return err
	}
	return c.reply(res)
}

func handleFinishArtifact(c *call) error {
	runID, err := c.runID()
	if err != nil {
		return err
	}
	var req struct {
		UploadID string `json:"uploadId"`
	}
	if err := c.decode(&req); err != nil {
		return err
	}
	if !slugIDPattern.MatchString(req.UploadID) {
		return errInput("uploadId is required and must be a slugid")
	}
	if err := c.authorize(nil); err != nil {
		return err
	}
	if err := c.s.finishArtifact(c.param("taskId"), runID, c.param("name"), req.UploadID); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// requestedRunID is the route's runId, or -1 (the latest run) for the
// latest* endpoints.
func (c *call) requestedRunID(latest bool) (int, error) {
	if latest {
		return -1, nil
	}
	return c.runID()
}

// artifactTarget resolves the route's artifact (following links), checking
// queue:get-artifact:<name> for every name on the way.
func (c *call) artifactTarget(latest bool) (artifactTarget, error) {
	runID, err := c.requestedRunID(latest)
	if err != nil {
		return artifactTarget{}, err
	}
	check := func(name string) error {
		return c.authorize(scopeParams{"names": []string{name}})
	}
	return c.s.lookupArtifact(c.param("taskId"), runID, c.param("name"), c.base, check)
}

func handleGetArtifact(latest bool) func(c *call) error {
	return func(c *call) error {
		tgt, err := c.artifactTarget(latest)
		if err != nil {
			return err
		}
		c.w.Header().Set("x-taskcluster-artifact-storage-type", tgt.storageType)
		if tgt.storageType == "error" {
			return writeJSON(c.w, http.StatusFailedDependency, map[string]string{"reason": tgt.reason, "message": tgt.message})
		}
		c.w.Header().Set("Location", tgt.url)
		return writeJSON(c.w, http.StatusSeeOther, map[string]string{"storageType": tgt.storageType, "url": tgt.url})
	}
}

// handleArtifactContent answers artifact / latestArtifact
// (artifact-content-response.json): where the content is, as JSON with
// status 200; object artifacts get an object name and download
// credentials valid for an hour.
func handleArtifactContent(latest bool) func(c *call) error {
	return func(c *call) error {
		tgt, err := c.artifactTarget(latest)
		if err != nil {
			return err
		}
		switch tgt.storageType {
		case "error":
			return c.reply(map[string]string{"storageType": "error", "reason": tgt.reason, "message": tgt.message})
		case "object":
			now := c.s.now()
			cr, err := hawk.CreateTemporaryCredentials(c.s.issuer, "", []string{"object:download:" + tgt.objectName}, now, now.Add(time.Hour))
			if err != nil {
				return fmt.Errorf("issuing object download credentials: %w", err)
			}
			return c.reply(map[string]any{"storageType": "object", "name": tgt.objectName,
				"credentials": cr})
		}
		return c.reply(map[string]string{"storageType": tgt.storageType, "url": tgt.url})
	}
}

func handleListArtifacts(latest bool) func(c *call) error {
	return func(c *call) error {
		runID, err := c.requestedRunID(latest)
		if err != nil {
			return err
		}
		if err := c.authorize(nil); err != nil {
			return err
		}
		infos, err := c.s.listArtifacts(c.param("taskId"), runID)
		if err != nil {
			return err
		}
		start, end, next, err := page(c, len(infos))
		if err != nil {
			return err
		}
		res := map[string]any{"artifacts": infos[start:end]}
		if next != "" {
			res["continuationToken"] = next
		}
		return c.reply(res)
	}
}

func handleArtifactInfo(latest bool) func(c *call) error {
	return func(c *call) error {
		runID, err := c.requestedRunID(latest)
		if err != nil {
			return err
		}
		if err := c.authorize(nil); err != nil {
			return err
		}
		infos, err := c.s.listArtifacts(c.param("taskId"), runID)
		if err != nil {
			return err
		}
		for _, a := range infos {
			if a.Name == c.param("name") {
				return c.reply(a)
			}
		}
		return errNotFound("artifact %q not found", c.param("name"))
	}
}

func handleCreateUpload(c *call) error {
	var req createUploadRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := c.authorize(scopeParams{"projectId": req.ProjectID}); err != nil {
		return err
	}
	res, err := c.s.createUpload(c.param("name"), req, c.base)
	if err != nil {
		return err
	}
	return c.reply(res)
}

func handleFinishUpload(c *call) error {
	var req finishUploadRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := c.authorize(scopeParams{"projectId": req.ProjectID}); err != nil {
		return err
	}
	if err := c.s.finishUpload(c.param("name"), req); err != nil {
		return err
	}
	return c.reply(map[string]any{})
}

func handleStartDownload(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	res, err := c.s.startDownload(c.param("name"), c.body, c.base)
	if err != nil {
		return err
	}
	return c.reply(res)
}

func handleObjectMetadata(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	o, err := c.s.object(c.param("name"))
	if err != nil {
		return err
	}
	hashes := o.Hashes
	if hashes == nil {
		hashes = map[string]string{}
	}
	return c.reply(map[string]any{"projectId": o.ProjectID, "expires": o.Expires, "hashes": hashes})
}

func handleDownload(c *call) error {
	if err := c.authorize(nil); err != nil {
		return err
	}
	o, err := c.s.object(c.param("name"))
	if err != nil {
		return err
	}
	http.Redirect(c.w, c.r, c.s.signedURL(c.base, "get", o.Blob, "", c.s.now().Add(getURLLifetime)), http.StatusSeeOther)
	return nil
}

// handleBlobPut stores the body of a PUT to a signed upload URL. Like S3 it
// requires Content-Length (411 without it, also for an empty body) and the
// Content-Type the URL was signed for.
func (s *Server) handleBlobPut(w http.ResponseWriter, r *http.Request) {
	blob := r.PathValue("blob")
	q := r.URL.Query()
	fail := func(status int, code, msg string) {
		_ = writeJSON(w, status, map[string]string{"code": code, "message": msg})
	}
	if err := s.checkBlobURL("put", blob, q); err != nil {
		ae := err.(*apiError)
		fail(ae.status, ae.code, ae.msg)
		return
	}
	if r.Header.Get("Content-Length") == "" || r.ContentLength < 0 {
		fail(http.StatusLengthRequired, "MissingContentLength", "you must provide the Content-Length HTTP header")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != q.Get("contentType") {
		fail(http.StatusForbidden, "SignatureDoesNotMatch", fmt.Sprintf("Content-Type %q differs from the signed %q", ct, q.Get("contentType")))
		return
	}
	if err := s.storeBlob(blob, q.Get("contentType"), r.Header.Get("Content-Encoding"), r.ContentLength, r.Body); err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			fail(ae.status, ae.code, ae.msg)
			return
		}
		s.log.Error("storing upload", "err", err)
		fail(http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("ETag", `"`+blob+`"`)
	w.WriteHeader(http.StatusOK)
}

// handleBlobGet serves stored bytes at a signed download URL, with Range
// support.
func (s *Server) handleBlobGet(w http.ResponseWriter, r *http.Request) {
	blob := r.PathValue("blob")
	if err := s.checkBlobURL("get", blob, r.URL.Query()); err != nil {
		ae := err.(*apiError)
		_ = writeJSON(w, ae.status, map[string]string{"code": ae.code, "message": ae.msg})
		return
	}
	b, err := s.blob(blob)
	if err != nil {
		_ = writeJSON(w, http.StatusNotFound, map[string]string{"code": "NoSuchKey", "message": "nothing was uploaded"})
		return
	}
	f, err := s.openBlob(b)
	if err != nil {
		_ = writeJSON(w, http.StatusNotFound, map[string]string{"code": "NoSuchKey", "message": err.Error()})
		return
	}
	defer func() { _ = f.Close() }()
	if b.ContentType != "" {
		w.Header().Set("Content-Type", b.ContentType)
	}
	if b.ContentEncoding != "" {
		w.Header().Set("Content-Encoding", b.ContentEncoding)
	}
	http.ServeContent(w, r, "", time.Time{}, f)
}
