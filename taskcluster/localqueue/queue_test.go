package localqueue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/workergen/workergen/taskcluster/tcwire"
)

func TestLifecycleHappyPath(t *testing.T) {
	h := newHarness(t)
	id := h.createTask(nil)
	if st := h.status(id); st.State != tcwire.StatePending || runStates(st) != "pending/scheduled/" || st.RetriesLeft != 2 {
		t.Fatalf("after createTask: %s %s retriesLeft %d", st.State, runStates(st), st.RetriesLeft)
	}
	// Task definition and status over HTTP, validated against the schemas.
	h.admin.call("GET", "queue", "/task/"+id, nil, "", "queue/v1/task.json", 200)
	h.admin.call("GET", "queue", "/task/"+id+"/status", nil, "", "queue/v1/task-status-response.json", 200)

	c := h.claim()
	if c.Status.TaskID != id || c.RunID != 0 || c.WorkerGroup != testWorkerGroup || c.WorkerID != testWorkerID {
		t.Fatalf("claim: %+v", c)
	}
	if !c.TakenUntil.Equal(t0.Add(20 * time.Minute)) {
		t.Fatalf("takenUntil %s", c.TakenUntil)
	}
	if string(c.Task.Payload) != `{"command":[["true"]],"maxRunTime":60}` {
		t.Fatalf("payload %s", c.Task.Payload)
	}
	if h.status(id).State != tcwire.StateRunning {
		t.Fatalf("state %s after claim", h.status(id).State)
	}
	// Nothing else pending.
	if n := len(h.claimN(4)); n != 0 {
		t.Fatalf("second claim got %d tasks", n)
	}

	tc := h.clientFor(c.Credentials)
	// Reclaim a few times with the latest credentials, as a worker does.
	for i := 1; i <= 3; i++ {
		h.clock.Advance(15 * time.Minute)
		r := tc.call("POST", "queue", runPath(id, 0, "/reclaim"), nil, "", "queue/v1/task-reclaim-response.json", 200)
		var rec ReclaimResult
		r.decode(t, &rec)
		if !rec.TakenUntil.Equal(h.clock.Now().Add(20 * time.Minute)) {
			t.Fatalf("reclaim %d: takenUntil %s", i, rec.TakenUntil)
		}
		tc = h.clientFor(rec.Credentials)
	}
	if err := h.s.CheckExpiry(); err != nil {
		t.Fatal(err)
	}
	if st := h.status(id); st.State != tcwire.StateRunning {
		t.Fatalf("claim kept alive by reclaims, state %s", runStates(st))
	}

	// Artifacts: s3 with content, reference, error, link.
	expires := h.clock.Now().Add(24 * time.Hour).Format(time.RFC3339)
	r := tc.call("POST", "queue", runPath(id, 0, "/artifacts/public/logs/live_backing.log"),
		map[string]any{"storageType": "s3", "contentType": "text/plain; charset=utf-8", "expires": expires, "contentLength": 11},
		"queue/v1/post-artifact-request.json", "queue/v1/post-artifact-response.json", 200)
	var s3 struct{ PutURL string }
	r.decode(t, &s3)
	if pr := h.put(s3.PutURL, "text/plain; charset=utf-8", []byte("hello world")); pr.status != 200 {
		t.Fatalf("PUT: %d %s", pr.status, pr.body)
	}
	tc.call("POST", "queue", runPath(id, 0, "/artifacts/public/logs/live.log"),
		map[string]any{"storageType": "reference", "contentType": "text/plain", "expires": expires, "url": "https://example.com/live"},
		"queue/v1/post-artifact-request.json", "queue/v1/post-artifact-response.json", 200)
	tc.call("POST", "queue", runPath(id, 0, "/artifacts/public/missing.txt"),
		map[string]any{"storageType": "error", "expires": expires, "reason": "file-missing-on-worker", "message": "no such file"},
		"queue/v1/post-artifact-request.json", "queue/v1/post-artifact-response.json", 200)
	tc.call("POST", "queue", runPath(id, 0, "/artifacts/public/logs/link.log"),
		map[string]any{"storageType": "link", "expires": expires, "artifact": "public/logs/live_backing.log"},
		"queue/v1/post-artifact-request.json", "queue/v1/post-artifact-response.json", 200)
	// The live log becomes a link at the end.
	tc.call("POST", "queue", runPath(id, 0, "/artifacts/public/logs/live.log"),
		map[string]any{"storageType": "reference", "contentType": "text/plain", "expires": expires, "url": "https://example.com/moved"},
		"queue/v1/post-artifact-request.json", "queue/v1/post-artifact-response.json", 200)

	tc.call("POST", "queue", runPath(id, 0, "/completed"), nil, "", "queue/v1/task-status-response.json", 200)
	st := h.status(id)
	if st.State != tcwire.StateCompleted || runStates(st) != "completed/scheduled/completed" || st.Runs[0].Resolved.IsZero() {
		t.Fatalf("after reportCompleted: %s", runStates(st))
	}
	// Resolving again the same way is idempotent; differently is 409.
	tc.call("POST", "queue", runPath(id, 0, "/completed"), nil, "", "queue/v1/task-status-response.json", 200)
	tc.call("POST", "queue", runPath(id, 0, "/failed"), nil, "", "", 409)
	tc.call("POST", "queue", runPath(id, 0, "/reclaim"), nil, "", "", 409)

	// listArtifacts and getArtifact (anonymous: public artifacts).
	r = h.admin.call("GET", "queue", runPath(id, 0, "/artifacts"), nil, "", "queue/v1/list-artifacts-response.json", 200)
	var list struct{ Artifacts []artifactInfo }
	r.decode(t, &list)
	if len(list.Artifacts) != 4 {
		t.Fatalf("listArtifacts: %s", r.body)
	}
	h.admin.call("GET", "queue", "/task/"+id+"/artifacts", nil, "", "queue/v1/list-artifacts-response.json", 200)
	h.admin.call("GET", "queue", runPath(id, 0, "/artifact-info/public/missing.txt"), nil, "", "queue/v1/artifact-response.json", 200)
	var anon *tcClient
	for _, name := range []string{"public/logs/live_backing.log", "public/logs/link.log"} {
		r = anon.callAs(h, "GET", runPath(id, 0, "/artifacts/"+name), 303)
		if err := h.schemas.Validate("queue/v1/get-artifact-response.json", r.body); err != nil {
			t.Fatal(err)
		}
		if r.header.Get("x-taskcluster-artifact-storage-type") != "s3" {
			t.Fatalf("storage type header %q", r.header.Get("x-taskcluster-artifact-storage-type"))
		}
		got := h.get(r.header.Get("Location"))
		if got.status != 200 || string(got.body) != "hello world" || got.header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("download %s: %d %q %q", name, got.status, got.body, got.header.Get("Content-Type"))
		}
	}
	r = anon.callAs(h, "GET", runPath(id, 0, "/artifacts/public/logs/live.log"), 303)
	if r.header.Get("Location") != "https://example.com/moved" {
		t.Fatalf("reference Location %q", r.header.Get("Location"))
	}
	r = anon.callAs(h, "GET", "/task/"+id+"/artifacts/public/missing.txt", 424)
	var e424 struct{ Reason, Message string }
	r.decode(t, &e424)
	if e424.Reason != "file-missing-on-worker" || e424.Message != "no such file" {
		t.Fatalf("424 body %s", r.body)
	}
	anon.callAs(h, "GET", runPath(id, 0, "/artifacts/public/nope"), 404)
	for _, name := range []string{"public/logs/live_backing.log", "public/logs/live.log", "public/missing.txt", "public/logs/link.log"} {
		h.admin.call("GET", "queue", runPath(id, 0, "/artifact-content/"+name), nil, "", "queue/v1/artifact-content-response.json", 200)
		h.admin.call("GET", "queue", "/task/"+id+"/artifact-content/"+name, nil, "", "queue/v1/artifact-content-response.json", 200)
	}

	arts, err := h.s.Artifacts(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 4 || arts[2].Name != "public/logs/live_backing.log" || string(arts[2].Content) != "hello world" || !arts[2].Uploaded {
		t.Fatalf("Artifacts: %+v", arts)
	}
}

// callAs sends an unauthenticated queue request (c is nil).
func (c *tcClient) callAs(h *harness, method, path string, want int) response {
	h.t.Helper()
	anon := &tcClient{h: h}
	r := anon.do(method, "queue", path, nil)
	if r.status != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

func TestClaimExpiryRetries(t *testing.T) {
	h := newHarness(t)
	id := h.createTask(func(d map[string]any) { d["retries"] = 1 })
	c0 := h.claim()
	h.clock.Advance(20*time.Minute + time.Millisecond)
	if err := h.s.CheckExpiry(); err != nil {
		t.Fatal(err)
	}
	st := h.status(id)
	if runStates(st) != "exception/scheduled/claim-expired pending/retry/" || st.RetriesLeft != 0 || st.State != tcwire.StatePending {
		t.Fatalf("after claim expiry: %s retriesLeft %d", runStates(st), st.RetriesLeft)
	}
	// The old run's worker learns with a 409.
	h.clientFor(c0.Credentials).call("POST", "queue", runPath(id, 0, "/reclaim"), nil, "", "", 409)
	h.clientFor(c0.Credentials).call("POST", "queue", runPath(id, 0, "/completed"), nil, "", "", 409)

	c1 := h.claim()
	if c1.RunID != 1 {
		t.Fatalf("second claim run %d", c1.RunID)
	}
	// Run 0's credentials do not cover run 1.
	h.clientFor(c0.Credentials).call("POST", "queue", runPath(id, 1, "/completed"), nil, "", "", 403)
	// No retries left: the task ends exception.
	h.clock.Advance(21 * time.Minute)
	// Expiry also happens on any request, without CheckExpiry.
	r := h.admin.call("GET", "queue", "/task/"+id+"/status", nil, "", "queue/v1/task-status-response.json", 200)
	var res struct{ Status TaskStatus }
	r.decode(t, &res)
	if runStates(res.Status) != "exception/scheduled/claim-expired exception/retry/claim-expired" || res.Status.State != tcwire.StateException {
		t.Fatalf("after second expiry: %s", runStates(res.Status))
	}
}

func TestReportExceptionRetries(t *testing.T) {
	h := newHarness(t)
	id := h.createTask(func(d map[string]any) { d["retries"] = 2 })
	exc := func(runID int, creds Credentials, reason string, want int) {
		t.Helper()
		h.clientFor(creds).call("POST", "queue", runPath(id, runID, "/exception"), map[string]any{"reason": reason},
			"queue/v1/task-exception-request.json", "queue/v1/task-status-response.json", want)
	}
	c := h.claim()
	exc(0, c.Credentials, tcwire.ReasonWorkerShutdown, 200)
	exc(0, c.Credentials, tcwire.ReasonWorkerShutdown, 200) // idempotent
	exc(0, c.Credentials, tcwire.ReasonInternalError, 409)
	c = h.claim()
	exc(1, c.Credentials, tcwire.ReasonIntermittentTask, 200)
	c = h.claim()
	exc(2, c.Credentials, tcwire.ReasonIntermittentTask, 200) // no retries left
	st := h.status(id)
	want := "exception/scheduled/worker-shutdown exception/retry/intermittent-task exception/task-retry/intermittent-task"
	if runStates(st) != want || st.State != tcwire.StateException || st.RetriesLeft != 0 {
		t.Fatalf("runs %s (state %s, retriesLeft %d), want %s", runStates(st), st.State, st.RetriesLeft, want)
	}

	// malformed-payload never retries; failed resolves failed.
	id2 := h.createTask(nil)
	c = h.claim()
	h.clientFor(c.Credentials).call("POST", "queue", runPath(id2, 0, "/exception"), map[string]any{"reason": "malformed-payload"}, "", "", 200)
	if st := h.status(id2); runStates(st) != "exception/scheduled/malformed-payload" {
		t.Fatalf("malformed-payload: %s", runStates(st))
	}
	id3 := h.createTask(nil)
	c = h.claim()
	h.clientFor(c.Credentials).call("POST", "queue", runPath(id3, 0, "/exception"), map[string]any{"reason": "bogus"}, "", "", 400)
	h.clientFor(c.Credentials).call("POST", "queue", runPath(id3, 0, "/failed"), nil, "", "queue/v1/task-status-response.json", 200)
	if st := h.status(id3); runStates(st) != "failed/scheduled/failed" || st.State != tcwire.StateFailed {
		t.Fatalf("failed: %s", runStates(st))
	}
	h.clientFor(c.Credentials).call("POST", "queue", runPath(id3, 5, "/failed"), nil, "", "", 404)
}

func TestDeadline(t *testing.T) {
	h := newHarness(t)
	deadline := func(d map[string]any) {
		d["deadline"] = h.clock.Now().Add(30 * time.Minute).Format(time.RFC3339)
	}
	running := h.createTask(deadline)
	c := h.claim()
	pending := h.createTask(deadline)
	dep := h.createTask(func(d map[string]any) {
		deadline(d)
		d["dependencies"] = []string{pending}
	})
	if st := h.status(dep); st.State != tcwire.StateUnscheduled || len(st.Runs) != 0 {
		t.Fatalf("dependent task: %s", st.State)
	}
	h.clock.Advance(15 * time.Minute)
	var rec ReclaimResult
	h.clientFor(c.Credentials).call("POST", "queue", runPath(running, 0, "/reclaim"), nil, "", "", 200).decode(t, &rec)
	h.clock.Advance(15 * time.Minute)
	// Past the deadline: reclaim is 409 and every unresolved task is
	// resolved deadline-exceeded.
	h.clientFor(rec.Credentials).call("POST", "queue", runPath(running, 0, "/reclaim"), nil, "", "", 409)
	for id, want := range map[string]string{
		running: "exception/scheduled/deadline-exceeded",
		pending: "exception/scheduled/deadline-exceeded",
		dep:     "exception/exception/deadline-exceeded",
	} {
		if st := h.status(id); runStates(st) != want || st.State != tcwire.StateException {
			t.Errorf("task %s: %s, want %s", id, runStates(st), want)
		}
	}
	if n := len(h.claimN(4)); n != 0 {
		t.Fatalf("claimed %d tasks past their deadline", n)
	}
	if _, err := h.s.Cancel(running); err == nil {
		t.Fatal("cancel past deadline succeeded")
	}
}

func TestCancelMakesReclaimConflict(t *testing.T) {
	h := newHarness(t)
	id := h.createTask(nil)
	c := h.claim()
	tc := h.clientFor(c.Credentials)
	tc.call("POST", "queue", runPath(id, 0, "/reclaim"), nil, "", "", 200)
	// Cancel over HTTP (admin) as a user would.
	h.admin.call("POST", "queue", "/task/"+id+"/cancel", nil, "", "queue/v1/task-status-response.json", 200)
	r := tc.call("POST", "queue", runPath(id, 0, "/reclaim"), nil, "", "", 409)
	var e struct{ Code string }
	r.decode(t, &e)
	if e.Code != "RequestConflict" {
		t.Fatalf("code %q", e.Code)
	}
	tc.call("POST", "queue", runPath(id, 0, "/completed"), nil, "", "", 409)
	if st := h.status(id); runStates(st) != "exception/scheduled/canceled" {
		t.Fatalf("after cancel: %s", runStates(st))
	}
	// Cancelling a resolved task changes nothing; an unscheduled or pending
	// one gets its run resolved canceled.
	if _, err := h.s.Cancel(id); err != nil {
		t.Fatal(err)
	}
	id2 := h.createTask(nil)
	if st, err := h.s.Cancel(id2); err != nil || runStates(st) != "exception/scheduled/canceled" {
		t.Fatalf("cancel pending: %v %s", err, runStates(st))
	}
	if n := len(h.claimN(1)); n != 0 {
		t.Fatal("claimed a cancelled task")
	}
}

func TestLongPoll(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.LongPoll = time.Minute })
	var wg sync.WaitGroup
	var got []ClaimedTask
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		got, err = h.s.ClaimWork(context.Background(), testQueue, testWorkerGroup, testWorkerID, 2)
		if err != nil {
			t.Error(err)
		}
	}()
	// The poller waits; creating a task wakes it (no sleep needed: either
	// the task is there when it first looks, or it is woken).
	id := h.createTask(nil)
	wg.Wait()
	if len(got) != 1 || got[0].Status.TaskID != id {
		t.Fatalf("long poll got %+v", got)
	}
	// A cancelled context ends the poll with no tasks.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := h.s.ClaimWork(ctx, testQueue, testWorkerGroup, testWorkerID, 1); err != nil || len(got) != 0 {
		t.Fatalf("cancelled poll: %v %v", got, err)
	}
}

func TestPriorityAndCapacity(t *testing.T) {
	h := newHarness(t)
	low := h.createTask(nil)
	var ids []string
	for range 9 {
		ids = append(ids, h.createTask(nil))
	}
	high := h.createTask(func(d map[string]any) { d["priority"] = "high" })
	claims := h.claimN(8)
	if len(claims) != 8 || claims[0].Status.TaskID != high || claims[1].Status.TaskID != low {
		t.Fatalf("claims: %d first %s", len(claims), claims[0].Status.TaskID)
	}
	if rest := h.claimN(8); len(rest) != 3 {
		t.Fatalf("second claim got %d", len(rest))
	}
}

func TestDependencies(t *testing.T) {
	h := newHarness(t)
	a := h.createTask(nil)
	b := h.createTask(nil)
	allCompleted := h.createTask(func(d map[string]any) { d["dependencies"] = []string{a, b} })
	allResolved := h.createTask(func(d map[string]any) {
		d["dependencies"] = []string{a, b}
		d["requires"] = "all-resolved"
	})
	// Unknown dependencies are refused.
	h.admin.call("PUT", "queue", "/task/"+NewTaskID(), h.taskDef(func(d map[string]any) { d["dependencies"] = []string{NewTaskID()} }), "", "", 400)

	resolve := func(path string) {
		c := h.claim()
		h.clientFor(c.Credentials).call("POST", "queue", runPath(c.Status.TaskID, 0, path), nil, "", "", 200)
	}
	r := h.admin.call("GET", "queue", "/task/"+a+"/dependents?limit=1", nil, "", "queue/v1/list-dependent-tasks-response.json", 200)
	var page struct {
		Tasks             []TaskAndStatus
		ContinuationToken string
	}
	r.decode(t, &page)
	if len(page.Tasks) != 1 || page.ContinuationToken == "" {
		t.Fatalf("listDependentTasks page 1: %s", r.body)
	}
	r = h.admin.call("GET", "queue", "/task/"+a+"/dependents?limit=1&continuationToken="+page.ContinuationToken, nil, "", "queue/v1/list-dependent-tasks-response.json", 200)
	page.ContinuationToken = ""
	r.decode(t, &page)
	if len(page.Tasks) != 1 || page.ContinuationToken != "" {
		t.Fatalf("listDependentTasks page 2: %s", r.body)
	}
	resolve("/completed") // a (created first)
	if h.status(allCompleted).State != tcwire.StateUnscheduled {
		t.Fatal("scheduled before every dependency resolved")
	}
	resolve("/failed") // b
	if st := h.status(allResolved); st.State != tcwire.StatePending {
		t.Fatalf("all-resolved: %s", st.State)
	}
	if st := h.status(allCompleted); st.State != tcwire.StateUnscheduled {
		t.Fatalf("all-completed with a failed dependency: %s", st.State)
	}
}

func TestCreateTaskRules(t *testing.T) {
	h := newHarness(t)
	id := NewTaskID()
	def := h.taskDef(nil)
	h.admin.call("PUT", "queue", "/task/"+id, def, "", "queue/v1/task-status-response.json", 200)
	h.admin.call("PUT", "queue", "/task/"+id, def, "", "queue/v1/task-status-response.json", 200) // idempotent
	def["retries"] = 3
	h.admin.call("PUT", "queue", "/task/"+id, def, "", "", 409)
	for name, mod := range map[string]func(map[string]any){
		"deadline too far":     func(d map[string]any) { d["deadline"] = h.clock.Now().Add(6 * 24 * time.Hour).Format(time.RFC3339) },
		"created in future":    func(d map[string]any) { d["created"] = h.clock.Now().Add(time.Hour).Format(time.RFC3339) },
		"expires < deadline":   func(d map[string]any) { d["expires"] = h.clock.Now().Add(time.Minute).Format(time.RFC3339) },
		"no metadata":          func(d map[string]any) { delete(d, "metadata") },
		"bad queue":            func(d map[string]any) { d["taskQueueId"] = "nope" },
		"unknown field":        func(d map[string]any) { d["bogus"] = 1 },
		"payload not object":   func(d map[string]any) { d["payload"] = []int{1} },
		"retries out of range": func(d map[string]any) { d["retries"] = 50 },
	} {
		r := h.admin.do("PUT", "queue", "/task/"+NewTaskID(), h.taskDef(mod))
		if r.status != 400 {
			t.Errorf("%s: status %d: %s", name, r.status, r.body)
		}
	}
	h.admin.call("PUT", "queue", "/task/not-a-slug", h.taskDef(nil), "", "", 400)
	// A task group keeps one schedulerId.
	h.admin.call("PUT", "queue", "/task/"+NewTaskID(), h.taskDef(func(d map[string]any) {
		d["taskGroupId"], d["schedulerId"] = id, "other-scheduler"
	}), "", "", 409)
	// provisionerId/workerType instead of taskQueueId.
	r := h.admin.call("PUT", "queue", "/task/"+NewTaskID(), h.taskDef(func(d map[string]any) {
		delete(d, "taskQueueId")
		d["provisionerId"], d["workerType"] = "test-prov", "test-wt"
	}), "", "queue/v1/task-status-response.json", 200)
	var res struct{ Status TaskStatus }
	r.decode(t, &res)
	if res.Status.TaskQueueID != testQueue {
		t.Fatalf("taskQueueId %q", res.Status.TaskQueueID)
	}
	// The helper takes the same definitions.
	if _, err := h.s.CreateTaskJSON(context.Background(), NewTaskID(), h.taskDef(nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.CreateTaskJSON(context.Background(), id, h.taskDef(nil)); err != nil {
		t.Fatalf("CreateTask with the same definition: %v", err)
	}
	if _, err := h.s.CreateTaskJSON(context.Background(), id, h.taskDef(func(d map[string]any) { d["retries"] = 3 })); !errors.Is(err, ErrConflict) {
		t.Fatal("CreateTask with a different definition for an existing taskId succeeded")
	}
}
